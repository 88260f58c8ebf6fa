/// The JSON header of a safetensors file, read by hand: an object of tensor entries
/// (`{"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}`) and an optional
/// `__metadata__` object of strings. A coordinator reads one per weights or mask output it
/// checks, hundreds a second in a fleet, and `JSONSerialization` with the casts of its
/// shapes and offsets to `[Int]` took a fifth of the coordinator's CPU (docs/fleet-scale.md).
/// Any JSON is read: an entry's fields it does not know are skipped, and a field of the
/// wrong kind is left out (the caller names the entry that lacks it).
struct SafetensorsHeader {
    /// One tensor's fields, each nil when absent or not of its kind (`shape` and `offsets`
    /// are arrays of integers).
    struct Entry: Equatable {
        var name: String
        var dtype: String?, shape: [Int]?, offsets: [Int]?
    }

    /// Why the bytes are not a header (the JSON's own fault, or an object that is missing).
    struct Malformed: Error, Equatable {
        /// What was wrong, and the byte offset where it was found.
        var reason: String, offset: Int
    }

    /// The entries in the order the header lists them (a repeated name: each time).
    var entries: [Entry] = []
    /// `__metadata__`, when it is an object of strings (otherwise none, as a reader of
    /// `[String: String]` would take it).
    var metadata: [String: String] = [:]

    /// Nested arrays and objects deeper than this are refused (a hostile header must not
    /// exhaust the stack).
    static let maximumDepth = 64

    /// Reads `bytes` (the header without its length field; trailing spaces allowed).
    init(_ bytes: UnsafeRawBufferPointer) throws(Malformed) {
        var reader = Reader(bytes: bytes)
        try reader.expect(UInt8(ascii: "{"), "expected {")
        var first = true
        while try !reader.closes(UInt8(ascii: "}"), first: &first) {
            let name = try reader.key()
            if name == "__metadata__" {
                metadata = try reader.stringObject() ?? [:]
            } else {
                entries.append(try reader.entry(name))
            }
        }
        reader.skipSpace()
        guard reader.index == bytes.count else { throw reader.malformed("bytes after the header's object") }
    }

    /// A cursor over the header's bytes.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        func malformed(_ reason: String) -> Malformed { Malformed(reason: reason, offset: index) }

        var next: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = next, byte == 0x20 || byte == 0x0a || byte == 0x0d || byte == 0x09 { index += 1 }
        }

        mutating func expect(_ byte: UInt8, _ reason: @autoclosure () -> String) throws(Malformed) {
            skipSpace()
            guard next == byte else { throw malformed(reason()) }
            index += 1
        }

        /// Whether the object or array ends here (`close`); otherwise eats the comma between
        /// two members (none before the first). A comma before the end is allowed, as
        /// Foundation's reader allows it.
        mutating func closes(_ close: UInt8, first: inout Bool) throws(Malformed) -> Bool {
            skipSpace()
            if next == close {
                index += 1
                return true
            }
            if !first {
                try expect(UInt8(ascii: ","), "expected , or \(Character(Unicode.Scalar(close)))")
                skipSpace()
                if next == close {
                    index += 1
                    return true
                }
            }
            first = false
            return false
        }

        /// A member's name and its colon.
        mutating func key() throws(Malformed) -> String {
            skipSpace()
            let name = try string()
            try expect(UInt8(ascii: ":"), "expected : after a name")
            return name
        }

        /// One tensor's object (anything else: an entry with no fields).
        mutating func entry(_ name: String) throws(Malformed) -> Entry {
            var entry = Entry(name: name)
            skipSpace()
            guard next == UInt8(ascii: "{") else {
                try skipValue(depth: 0)
                return entry
            }
            index += 1
            var first = true
            while try !closes(UInt8(ascii: "}"), first: &first) {
                switch try key() {
                case "dtype": entry.dtype = try stringValue()
                case "shape": entry.shape = try integers()
                case "data_offsets": entry.offsets = try integers()
                default: try skipValue(depth: 1)
                }
            }
            return entry
        }

        /// An object whose values are all strings, or nil for any other value (skipped).
        mutating func stringObject() throws(Malformed) -> [String: String]? {
            skipSpace()
            guard next == UInt8(ascii: "{") else {
                try skipValue(depth: 0)
                return nil
            }
            index += 1
            var object: [String: String]? = [:]
            var first = true
            while try !closes(UInt8(ascii: "}"), first: &first) {
                let name = try key()
                if let value = try stringValue() { object?[name] = value } else { object = nil }
            }
            return object
        }

        /// A string value, or nil for any other value (skipped).
        mutating func stringValue() throws(Malformed) -> String? {
            skipSpace()
            guard next == UInt8(ascii: "\"") else {
                try skipValue(depth: 1)
                return nil
            }
            return try string()
        }

        /// An array of integers, or nil for any other value (skipped).
        mutating func integers() throws(Malformed) -> [Int]? {
            skipSpace()
            guard next == UInt8(ascii: "[") else {
                try skipValue(depth: 1)
                return nil
            }
            index += 1
            var values: [Int]? = []
            var first = true
            while try !closes(UInt8(ascii: "]"), first: &first) {
                skipSpace()
                if let value = try integer() { values?.append(value) } else { values = nil }
            }
            return values
        }

        /// A number; its value when it is an integer that fits an `Int`, nil for any other
        /// number (or any other value, skipped).
        mutating func integer() throws(Malformed) -> Int? {
            guard let byte = next, byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte) else {
                try skipValue(depth: 2)
                return nil
            }
            let start = index
            try number()
            var value = 0, negative = false
            for position in start..<index {
                let digit = bytes[position]
                if digit == UInt8(ascii: "-") { negative = true; continue }
                guard (0x30...0x39).contains(digit) else { return nil }
                let (times, overflowTimes) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflowSum) = times.addingReportingOverflow(Int(digit - 0x30))
                guard !overflowTimes && !overflowSum else { return nil }
                value = sum
            }
            return negative ? -value : value
        }

        /// Eats a JSON number.
        mutating func number() throws(Malformed) {
            if next == UInt8(ascii: "-") { index += 1 }
            func digits(_ reader: inout Reader) throws(Malformed) {
                guard let byte = reader.next, (0x30...0x39).contains(byte) else { throw reader.malformed("expected a digit") }
                while let byte = reader.next, (0x30...0x39).contains(byte) { reader.index += 1 }
            }
            if next == 0x30 { index += 1 } else { try digits(&self) }
            if next == UInt8(ascii: ".") {
                index += 1
                try digits(&self)
            }
            if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
                index += 1
                if next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { index += 1 }
                try digits(&self)
            }
        }

        /// A JSON string (at its opening quote), escapes decoded.
        mutating func string() throws(Malformed) -> String {
            guard next == UInt8(ascii: "\"") else { throw malformed("expected a string") }
            index += 1
            let start = index
            while let byte = next, byte != UInt8(ascii: "\""), byte != UInt8(ascii: "\\") {
                guard byte >= 0x20 else { throw malformed("a control character in a string") }
                index += 1
            }
            guard let stop = next else { throw malformed("a string that does not end") }
            if stop == UInt8(ascii: "\"") {
                index += 1
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<(index - 1)]), as: UTF8.self)
            }
            // Escapes: rare in a header (names are tensor paths), so decoded the slow way.
            var text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            var plain: [UInt8] = []
            while true {
                guard let byte = next else { throw malformed("a string that does not end") }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    text += String(decoding: plain, as: UTF8.self)
                    return text
                case UInt8(ascii: "\\"):
                    text += String(decoding: plain, as: UTF8.self)
                    plain.removeAll(keepingCapacity: true)
                    text.unicodeScalars.append(try escape())
                case ..<0x20: throw malformed("a control character in a string")
                default: plain.append(byte)
                }
            }
        }

        /// The character of an escape (after its backslash); a `\u` pair of surrogates is one.
        mutating func escape() throws(Malformed) -> Unicode.Scalar {
            guard let byte = next else { throw malformed("a string that does not end") }
            index += 1
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): return Unicode.Scalar(byte)
            case UInt8(ascii: "b"): return "\u{08}"
            case UInt8(ascii: "f"): return "\u{0C}"
            case UInt8(ascii: "n"): return "\n"
            case UInt8(ascii: "r"): return "\r"
            case UInt8(ascii: "t"): return "\t"
            case UInt8(ascii: "u"):
                let unit = try hex4()
                if (0xD800..<0xDC00).contains(unit) {
                    guard next == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                        throw malformed("a lone surrogate in a string")
                    }
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw malformed("a lone surrogate in a string") }
                    guard let scalar = Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)) else { throw malformed("a lone surrogate in a string") }
                    return scalar
                }
                guard let scalar = Unicode.Scalar(unit) else { throw malformed("a lone surrogate in a string") }
                return scalar
            default: throw malformed("an unknown escape in a string")
            }
        }

        /// Four hex digits.
        mutating func hex4() throws(Malformed) -> UInt32 {
            var value: UInt32 = 0
            for _ in 0..<4 {
                guard let byte = next, let digit = Self.hexDigit(byte) else { throw malformed("expected four hex digits after \\u") }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        static func hexDigit(_ byte: UInt8) -> UInt32? {
            switch byte {
            case 0x30...0x39: UInt32(byte - 0x30)
            case 0x41...0x46: UInt32(byte - 0x41 + 10)
            case 0x61...0x66: UInt32(byte - 0x61 + 10)
            default: nil
            }
        }

        /// Eats any JSON value; `depth` is how deep in arrays and objects it is.
        mutating func skipValue(depth: Int) throws(Malformed) {
            skipSpace()
            guard let byte = next else { throw malformed("expected a value") }
            switch byte {
            case UInt8(ascii: "\""): _ = try string()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard depth < SafetensorsHeader.maximumDepth else { throw malformed("arrays or objects nested too deep") }
                index += 1
                let object = byte == UInt8(ascii: "{")
                var first = true
                while try !closes(object ? UInt8(ascii: "}") : UInt8(ascii: "]"), first: &first) {
                    if object { _ = try key() }
                    try skipValue(depth: depth + 1)
                }
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: try number()
            }
        }

        mutating func literal(_ word: String) throws(Malformed) {
            for byte in word.utf8 {
                guard next == byte else { throw malformed("expected \(word)") }
                index += 1
            }
        }
    }
}
