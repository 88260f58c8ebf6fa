/// One value of a sweep axis: a number (learning rate, rewind epoch, density), a word
/// (schedule, scope) or a flag (keep-classifier). Encoded as the plain JSON value, so
/// `results.json` and `aggregate.json` rows carry `"rewindEpoch": 1`, not a wrapper.
public enum AxisValue: Codable, Hashable, Sendable, Comparable, CustomStringConvertible {
    /// A numeric value.
    case number(Double)
    /// A word.
    case text(String)
    /// A flag.
    case flag(Bool)

    /// Decodes a JSON number, string or Boolean.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let flag = try? c.decode(Bool.self) {
            self = .flag(flag)
        } else if let number = try? c.decode(Double.self) {
            self = .number(number)
        } else {
            self = .text(try c.decode(String.self))
        }
    }

    /// Encodes the plain JSON value.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let value): try c.encode(value)
        case .text(let value): try c.encode(value)
        case .flag(let value): try c.encode(value)
        }
    }

    /// The numeric value, for axes drawn on a numeric scale.
    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    /// As a label reads it: integers without a decimal point ("2", "0.05", "global", "true").
    public var description: String {
        switch self {
        case .number(let value) where value == value.rounded() && abs(value) < 1e15: String(Int(value))
        case .number(let value): "\(value)"
        case .text(let value): value
        case .flag(let value): "\(value)"
        }
    }

    /// Numbers in numeric order, before words, before flags.
    public static func < (lhs: AxisValue, rhs: AxisValue) -> Bool {
        switch (lhs, rhs) {
        case let (.number(a), .number(b)): a < b
        case let (.text(a), .text(b)): a < b
        case let (.flag(a), .flag(b)): !a && b
        case (.number, _): true
        case (.text, .flag): true
        default: false
        }
    }
}
