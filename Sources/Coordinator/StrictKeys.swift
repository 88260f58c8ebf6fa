import Foundation

/// Decoding of hand-written JSON files (sweeps, cluster.json): an unknown field is an error,
/// because a typo must not silently change what runs, and every error names the field.
enum StrictKeys {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// Throws when the object being decoded has a key that `Keys` does not list.
    static func refuseUnknown<Keys: CodingKey & CaseIterable>(_: Keys.Type, in decoder: any Decoder) throws {
        let all = try decoder.container(keyedBy: AnyKey.self)
        let known = Set(Keys.allCases.map(\.stringValue))
        if let unknown = all.allKeys.first(where: { !known.contains($0.stringValue) }) {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [unknown],
                                                    debugDescription: "is not a known field (known: \(known.sorted().joined(separator: ", ")))"))
        }
    }

    /// One line naming the file and the field for a decoding failure.
    static func explain(_ error: any Error, file: URL, kind: String) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.reduce("") { path, key in
                if let index = key.intValue { return path + "[\(index)]" }
                return path.isEmpty ? key.stringValue : path + "." + key.stringValue
            }
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            let parent = path(context)
            return "\(file.path): field \(parent.isEmpty ? "" : parent + ".")\(key.stringValue) is missing"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "\(file.path): field \(path(context)) has the wrong type"
        case DecodingError.dataCorrupted(let context) where !context.codingPath.isEmpty:
            return "\(file.path): field \(path(context)) \(context.debugDescription)"
        default:
            return "\(file.path) is not a \(kind): \(error.localizedDescription)"
        }
    }
}
