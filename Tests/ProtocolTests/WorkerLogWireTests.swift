import Foundation
import Testing
@testable import Protocol

/// The `log` message and the `takesLogs` field that lets a worker know its coordinator takes it.
@Suite struct WorkerLogWireTests {
    @Test func logLinesRoundTripAndTaskAssignmentsOfOlderCoordinatorsStillDecode() throws {
        let line = Message.log(WorkerLogLine(time: 1_700_000_000.25, level: "warning", taskID: "abc", message: "the coordinator has been silent"))
        #expect(try Wire.decode(Wire.encode(line)) == line)
        let advertised = Message.task(TaskAssignment(taskID: "abc", attempt: 1, spec: "{}", inputs: [:], takesLogs: true))
        #expect(try Wire.decode(Wire.encode(advertised)) == advertised)
        // A coordinator from before the field sends no takesLogs: the worker keeps its lines local.
        let old = [Data("prunesweep/1".utf8), Data("task".utf8), Data(#"{"attempt":1,"inputs":{},"spec":"{}","taskID":"abc"}"#.utf8)]
        guard case .task(let assignment) = try Wire.decode(old) else { Issue.record("not a task"); return }
        #expect(assignment.takesLogs == nil)
        // A log header without its message is a malformed frame, not a crash.
        #expect(throws: WireError.self) { try Wire.decode([Data("prunesweep/1".utf8), Data("log".utf8), Data(#"{"level":"info"}"#.utf8)]) }
    }
}
