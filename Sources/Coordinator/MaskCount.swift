import Foundation
import Model

/// A mask file's kept and total weights, checked as `MaskSet(from:layout:source:)` checks it
/// (a tensor for every prunable layer, `F32`, the layer's shape, only 0 and 1) but counted
/// straight from the file's bytes: an output check needs the counts, not the float arrays
/// `MaskSet` builds (they were a sixth of the file lanes' time at 1,000 workers).
struct MaskCount: Sendable {
    /// Weights the mask keeps (entries equal to 1), and prunable weights in all.
    var kept: Int, total: Int

    /// The fraction of prunable weights kept.
    var density: Double { Double(kept) / Double(max(total, 1)) }

    /// The bit patterns a mask entry may hold: 0, -0 (equal to 0, as `MaskSet` compares) and 1.
    private static let zero: UInt32 = 0, negativeZero: UInt32 = 0x8000_0000, one: UInt32 = 0x3F80_0000

    /// The counts of the masks in `file` for a network laid out as `layout`; `source` names
    /// the file in errors, which are `MaskSet`'s.
    init(_ file: Safetensors, layout: ResNet18.Layout, source: String) throws(ModelError) {
        kept = 0
        total = 0
        for layer in layout.prunable {
            let name = layer.name
            let entry = try MaskSet.entry(for: layer, in: file, source: source)
            let counted = entry.bytes.withUnsafeBytes { bytes -> (ones: Int, count: Int, bad: UInt32?) in
                let count = bytes.count / MemoryLayout<UInt32>.size
                var ones = 0
                for index in 0..<count {
                    let bits = bytes.loadUnaligned(fromByteOffset: index * MemoryLayout<UInt32>.size, as: UInt32.self)
                    if bits == Self.one {
                        ones += 1
                    } else if bits != Self.zero && bits != Self.negativeZero {
                        return (ones, count, bits)
                    }
                }
                return (ones, count, nil)
            }
            if let bad = counted.bad {
                throw .invalidCheckpoint("\(source): mask \(name) holds \(Float(bitPattern: bad)); masks hold only 0 and 1")
            }
            kept += counted.ones
            total += counted.count
        }
    }
}
