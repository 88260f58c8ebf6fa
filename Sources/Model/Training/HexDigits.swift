extension Sequence where Element == UInt8 {
    /// The bytes as lower-case hexadecimal, two digits each: a digest's usual text. Written
    /// out by hand because `String(format: "%02x")` per byte costs a formatter call each, and
    /// a planner hashes every task's specification (20,000 of them per plan of a fleet's sweep).
    public var hexDigits: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
