import Foundation
import Testing
@testable import Model

/// The safetensors header read by hand: the same entries and metadata as a JSON reader
/// finds, fields of the wrong kind left out, and what is not JSON refused with where.
@Suite struct SafetensorsHeaderTests {
    static func read(_ json: String) throws(SafetensorsHeader.Malformed) -> SafetensorsHeader {
        let bytes = Array(json.utf8)
        return try bytes.withUnsafeBytes { raw in
            Result { () throws(SafetensorsHeader.Malformed) in try SafetensorsHeader(raw) }
        }.get()
    }

    /// What `JSONSerialization` and casts (the reader this one replaced) make of `json`.
    static func reference(_ json: String) -> (entries: [SafetensorsHeader.Entry], metadata: [String: String])? {
        guard let header = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return nil }
        let entries = header.filter { $0.key != "__metadata__" }.map { name, value in
            let fields = value as? [String: Any]
            return SafetensorsHeader.Entry(name: name, dtype: fields?["dtype"] as? String, shape: fields?["shape"] as? [Int],
                                           offsets: fields?["data_offsets"] as? [Int])
        }
        return (entries.sorted { $0.name < $1.name }, header["__metadata__"] as? [String: String] ?? [:])
    }

    @Test(arguments: [
        #"{"conv1.weight":{"dtype":"F32","shape":[4,3,3,3],"data_offsets":[0,432]},"__metadata__":{"format":"pt"}}"#,
        #"  { "b" : { "data_offsets" : [ 8 , 16 ] , "shape" : [ 2 ] , "dtype" : "F32" } , "a" : {"dtype": "I64", "shape": [], "data_offsets": [0, 8]} }    "#,
        #"{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "extra": {"nested": [1, 2.5e3, -0.5, true, false, null, "x"]}}}"#,
        #"{"t": {"dtype": 3, "shape": [2.5], "data_offsets": "0,8"}, "__metadata__": {"a": "b", "n": 1}}"#,
        #"{"t": [1, 2], "u": "string", "__metadata__": "not an object"}"#,
        #"{"\u00e9t\u00e9 \"q\" \\ \/ \ud83d\ude00\n": {"dtype": "F\u0033\u0032", "shape": [-1, 0], "data_offsets": [0, 0]}}"#,
        #"{"t": {"dtype": "F32", "shape": [9223372036854775807, 9223372036854775808], "data_offsets": [0, 1]}}"#,
        #"{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8],}, }"#,
        "{}",
    ])
    func readsWhatAJSONReaderReads(_ json: String) throws {
        let header = try Self.read(json)
        let expected = try #require(Self.reference(json))
        #expect(header.entries.sorted { $0.name < $1.name } == expected.entries)
        #expect(header.metadata == expected.metadata)
    }

    @Test(arguments: [
        ("[1, 2]", 0), (#"{"t": {"dtype": "F32",,}}"#, 22), (#"{"t": {"dtype": "F32"}} x"#, 24), (#"{"t": 01}"#, 7),
        (#"{"t": "a\qb"}"#, 10), (#"{"t": tru}"#, 9), (#"{"t": "open"#, 11), (#"{"t" 1}"#, 5), (#"{"t": "\ud800x"}"#, 13),
        ("{\"t\": \"a\u{01}b\"}", 8),
    ])
    func refusesWhatIsNotJSON(_ json: String, at offset: Int) {
        #expect(Self.reference(json) == nil)
        #expect { try Self.read(json) } throws: { ($0 as? SafetensorsHeader.Malformed)?.offset == offset }
    }

    @Test func refusesNestingDeeperThanTheBound() throws {
        let depth = SafetensorsHeader.maximumDepth
        let within = #"{"t": {"x": "# + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}}"
        #expect(try Self.read(within).entries == [SafetensorsHeader.Entry(name: "t")])
        let beyond = #"{"t": {"x": "# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}}"
        #expect { try Self.read(beyond) } throws: { ($0 as? SafetensorsHeader.Malformed)?.reason.contains("too deep") == true }
    }

    @Test func aWrittenFileReadsBackThroughIt() throws {
        var file = Safetensors(metadata: ["step": "train", "note": "a \"quoted\" é"])
        file.add("layer1.0.conv1.weight", shape: [2, 3], doubles: [1, 2, 3, 4, 5, 6])
        file.add("bias", shape: [1], doubles: [7])
        let read = try Safetensors(data: file.serialized(), source: "memory")
        #expect(read.names == ["layer1.0.conv1.weight", "bias"] && read.metadata == file.metadata)
        #expect(try read.doubles("layer1.0.conv1.weight") == [1, 2, 3, 4, 5, 6] && read.entries["bias"]?.shape == [1])
    }
}
