import Crypto
import Foundation

/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON
/// header mapping each name to `{dtype, shape, data_offsets}` (plus string `__metadata__`),
/// then the raw little-endian tensor bytes. PyTorch users read these files with
/// `safetensors.torch.load_file`.
public struct Safetensors: Sendable {
    /// One stored tensor: its element type, shape and bytes.
    public struct Entry: Sendable {
        /// The safetensors dtype name: "F32", "F64" or "I64".
        public var dtype: String
        /// The dimensions, outermost first.
        public var shape: [Int]
        /// The raw little-endian bytes.
        public var bytes: Data

        /// The number of elements.
        public var count: Int { shape.reduce(1, *) }
    }

    /// The tensors by name.
    public var entries: [String: Entry]
    /// The string-to-string metadata.
    public var metadata: [String: String]
    /// The tensor names in the order their bytes are stored.
    public var names: [String]

    private static let elementSizes = ["F32": 4, "F64": 8, "I64": 8]

    /// An empty container.
    public init(metadata: [String: String] = [:]) {
        entries = [:]
        self.metadata = metadata
        names = []
    }

    /// Adds (or replaces) a float32 tensor.
    public mutating func add(_ name: String, _ tensor: Tensor) {
        add(name, shape: tensor.shape, dtype: "F32", bytes: Data(bytes: tensor.pointer, count: tensor.count * 4))
    }

    /// Adds (or replaces) a float32 tensor without copying its elements, for writing a file
    /// straight from a live network: a width-64 checkpoint's copies (weights, momenta and masks,
    /// 135 MB) lifted a masked training's peak RSS above the training's own. `tensor` must
    /// outlive this container and stay unchanged while it is used.
    mutating func addView(_ name: String, _ tensor: Tensor) {
        add(name, shape: tensor.shape, dtype: "F32", bytes: Data(bytesNoCopy: tensor.pointer, count: tensor.count * 4, deallocator: .none))
    }

    /// Adds (or replaces) a float64 array with the given shape.
    public mutating func add(_ name: String, shape: [Int], doubles: [Double]) {
        add(name, shape: shape, dtype: "F64", bytes: doubles.withUnsafeBytes { Data($0) })
    }

    private mutating func add(_ name: String, shape: [Int], dtype: String, bytes: Data) {
        if entries[name] == nil { names.append(name) }
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Parses a safetensors file; `url` names the file in every error.
    public init(contentsOf url: URL) throws(ModelError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .io("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(data: data, source: url.path)
    }

    /// Parses safetensors bytes; `source` names them in errors.
    public init(data: Data, source: String) throws(ModelError) {
        guard data.count >= 8 else { throw .invalidCheckpoint("\(source): \(data.count) bytes is too short for a safetensors file") }
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        guard headerLength > 0, 8 + headerLength <= data.count else {
            throw .invalidCheckpoint("\(source): header length \(headerLength) does not fit in a \(data.count)-byte file (truncated?)")
        }
        let body = data.dropFirst(8 + headerLength)
        let parsed = data.withUnsafeBytes { raw in
            Result { () throws(SafetensorsHeader.Malformed) in try SafetensorsHeader(UnsafeRawBufferPointer(rebasing: raw[8..<(8 + headerLength)])) }
        }
        let header: SafetensorsHeader
        switch parsed {
        case .success(let read): header = read
        case .failure(let malformed):
            throw .invalidCheckpoint("\(source): the header is not a JSON object of tensors (\(malformed.reason) at byte \(malformed.offset) of \(headerLength))")
        }
        metadata = header.metadata
        entries = [:]
        var begins: [String: Int] = [:]
        for entry in header.entries {
            let name = entry.name
            guard let dtype = entry.dtype, let shape = entry.shape, let offsets = entry.offsets, offsets.count == 2
            else { throw .invalidCheckpoint("\(source): entry \(name) lacks dtype, shape or data_offsets") }
            guard let size = Self.elementSizes[dtype] else {
                throw .invalidCheckpoint("\(source): \(name) has dtype \(dtype); only F32, F64 and I64 are supported")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin, end <= body.count, end - begin == shape.reduce(1, *) * size else {
                throw .invalidCheckpoint("\(source): \(name) has offsets [\(begin), \(end)) that do not match shape \(shape) × \(size) bytes in a \(body.count)-byte body (truncated?)")
            }
            // A slice shares the file's bytes (a width-64 file is 45 MB: a copy per tensor doubled
            // the memory and the time of reading one); a tensor not aligned to its element size
            // is copied, so that reading it as floats stays aligned.
            let start = body.startIndex + begin
            let slice = body[start..<(start + end - begin)]
            let aligned = slice.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) % UInt(size) == 0 }
            entries[name] = Entry(dtype: dtype, shape: shape, bytes: aligned ? slice : Data(slice))
            // A name given twice: its last entry counts (as a JSON reader's dictionary keeps it).
            begins[name] = begin
        }
        names = begins.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map(\.key)
    }

    /// The serialised bytes: tensors in insertion order, header keys sorted, so equal content
    /// always gives equal bytes (and equal content hashes).
    public func serialized() -> Data {
        var data = header()
        data.reserveCapacity(data.count + names.reduce(0) { $0 + (entries[$1]?.bytes.count ?? 0) })
        for name in names { if let entry = entries[name] { data.append(entry.bytes) } }
        return data
    }

    /// The length field and the JSON header (padded to 8 bytes) that precede the tensors' bytes.
    private func header() -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for name in names {
            guard let entry = entries[name] else { continue }
            header[name] = ["dtype": entry.dtype, "shape": entry.shape, "data_offsets": [offset, offset + entry.bytes.count]] as [String: Any]
            offset += entry.bytes.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        // JSONSerialization of plain strings, ints and arrays cannot fail.
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var data = Data(capacity: 8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(json)
        return data
    }

    /// Writes the file atomically (see `writeAtomically`), the header and then each tensor's
    /// bytes as they are, so that no copy of the whole file is ever held in memory.
    public func write(to url: URL) throws(ModelError) {
        try Self.writeAtomically(to: url) { handle in
            try handle.write(contentsOf: header())
            for name in names { if let entry = entries[name] { try handle.write(contentsOf: entry.bytes) } }
        }
    }

    /// Writes `data` atomically to `url` (see `writeAtomically(to:_:)`).
    public static func writeAtomically(_ data: Data, to url: URL) throws(ModelError) {
        try writeAtomically(to: url) { try $0.write(contentsOf: data) }
    }

    /// Writes through `body` to a temporary sibling of `url`, flushes it and renames it over
    /// `url`, so a crash leaves either the old file or the new one, never half of one.
    static func writeAtomically(to url: URL, _ body: (FileHandle) throws -> Void) throws(ModelError) {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
                throw ModelError.io("cannot create \(temporary.path): is \(url.deletingLastPathComponent().path) writable?")
            }
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
            guard rename(temporary.path, url.path) == 0 else {
                throw ModelError.io("cannot rename \(temporary.path) to \(url.path): errno \(errno)")
            }
        } catch let error as ModelError {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw .io("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    /// The float32 tensor `name` as a new `Tensor`.
    public func tensor(_ name: String) throws(ModelError) -> Tensor {
        guard let entry = entries[name] else { throw .invalidCheckpoint("no tensor named \(name)") }
        guard entry.dtype == "F32" else { throw .invalidCheckpoint("\(name) is \(entry.dtype), expected F32") }
        let tensor = Tensor(shape: entry.shape)
        _ = entry.bytes.withUnsafeBytes { tensor.buffer.initialize(from: $0.bindMemory(to: Float.self)) }
        return tensor
    }

    /// The float64 tensor `name`, flattened.
    public func doubles(_ name: String) throws(ModelError) -> [Double] {
        guard let entry = entries[name], entry.dtype == "F64" else { throw .invalidCheckpoint("no F64 tensor named \(name)") }
        return entry.bytes.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    /// The int64 tensor `name`, flattened.
    public func integers(_ name: String) throws(ModelError) -> [Int64] {
        guard let entry = entries[name], entry.dtype == "I64" else { throw .invalidCheckpoint("no I64 tensor named \(name)") }
        return entry.bytes.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) }
    }

    /// The SHA-256 of every tensor's name, dtype, shape and bytes in storage order, as hex: a
    /// checksum of the content that ignores the metadata holding it.
    public var contentDigest: String {
        var hasher = SHA256()
        for name in names {
            guard let entry = entries[name] else { continue }
            hasher.update(data: Data("\(name)|\(entry.dtype)|\(entry.shape)|".utf8))
            hasher.update(data: entry.bytes)
        }
        return hasher.finalize().hexDigits
    }
}
