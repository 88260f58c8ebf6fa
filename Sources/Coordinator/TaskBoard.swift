import Foundation
import TaskRuntime

/// The journal's tasks in memory, for the socket thread: each task's row and decoded
/// specification, the tasks ready to start in plan order, and the counts by state, all
/// kept as rows change. The journal stays the record; the server hands every row it changes
/// to `update`, so nothing on the socket thread scans or decodes all tasks per message.
struct TaskBoard {
    /// A task: its row as the journal holds it, its specification, and its training workload.
    struct Entry {
        var row: Journal.TaskRow
        let spec: TaskSpec
        let workload: TrainingWorkload?
        /// `spec.summary`, made once (every log line, status and progress of the task names it).
        let summary: String
        /// `row.outputs` decoded (once per change of the row: every start and result check
        /// of a dependant reads its producers' outputs).
        var outputs: [String: String]?
    }

    private var entries: [String: Entry] = [:]
    /// The tasks that read each task's outputs.
    private var dependants: [String: [String]] = [:]
    /// For each queued task, its input tasks not yet done.
    private var waiting: [String: Int] = [:]
    /// Queued tasks whose inputs are all done, by plan position.
    private var ready: [(position: Int, id: String)] = []
    /// Tasks by state.
    private(set) var counts: [Journal.State: Int] = [:]
    /// Queued or running trainings (the status line's time left counts them).
    private(set) var trainingsLeft = 0

    /// The board of `rows` (the journal's tasks).
    init(_ rows: [Journal.TaskRow]) throws {
        for row in rows {
            let spec = try JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8))
            entries[row.id] = Entry(row: row, spec: spec, workload: TrainingWorkload(spec), summary: spec.summary, outputs: row.outputs.flatMap(Journal.decodedOutputs))
            for input in Set(spec.inputs.values) { dependants[input, default: []].append(row.id) }
        }
        for (id, entry) in entries {
            counts[entry.row.state, default: 0] += 1
            if Self.isTrainingLeft(entry) { trainingsLeft += 1 }
            waiting[id] = Set(entry.spec.inputs.values).filter { entries[$0]?.row.state != .done }.count
            if entry.row.state == .queued && waiting[id] == 0 { insertReady(entry.row) }
        }
    }

    /// A task by id.
    subscript(_ id: String) -> Entry? { entries[id] }

    /// All tasks.
    var total: Int { entries.count }

    /// Queued tasks whose inputs are done, in plan order, as the scheduler sees them (read
    /// lazily: a dispatch looks only as far as there are free workers).
    var runnable: LazyMapSequence<[(position: Int, id: String)], Scheduler.Ready> {
        let entries = entries
        return ready.lazy.map { Scheduler.Ready(id: $0.id, workload: entries[$0.id]?.workload) }
    }

    /// Whether a queued task has all its inputs done.
    var hasRunnable: Bool { !ready.isEmpty }

    /// Whether nothing is queued or running.
    var isSettled: Bool { (counts[.queued] ?? 0) + (counts[.running] ?? 0) == 0 }

    /// The one-line description of a task (its id's start for an unknown one).
    func summary(_ id: String) -> String { entries[id]?.summary ?? "task \(id.prefix(12))" }

    /// The artifacts `id` reads by role (`Journal.inputArtifacts`), from the rows in memory.
    func inputArtifacts(_ id: String) -> [String: String] {
        guard let entry = entries[id] else { return [:] }
        return Journal.inputArtifacts(of: entry.row, spec: entry.spec) { producer in entries[producer]?.outputs }
    }

    /// Takes the journal's new `row` of a task: its state moves in the counts and the ready
    /// list, and a task that became done releases the tasks waiting for it.
    mutating func update(_ row: Journal.TaskRow) {
        guard var entry = entries[row.id] else { return }
        let old = entry.row.state
        if Self.isTrainingLeft(entry) { trainingsLeft -= 1 }
        if row.outputs != entry.row.outputs { entry.outputs = row.outputs.flatMap(Journal.decodedOutputs) }
        entry.row = row
        entries[row.id] = entry
        if Self.isTrainingLeft(entry) { trainingsLeft += 1 }
        guard old != row.state else { return }
        counts[old, default: 0] -= 1
        counts[row.state, default: 0] += 1
        if old == .queued { removeReady(row) }
        if row.state == .queued && waiting[row.id] == 0 { insertReady(row) }
        guard row.state == .done else { return }
        for dependant in dependants[row.id] ?? [] {
            waiting[dependant, default: 1] -= 1
            if waiting[dependant] == 0, let next = entries[dependant], next.row.state == .queued { insertReady(next.row) }
        }
    }

    private static func isTrainingLeft(_ entry: Entry) -> Bool {
        guard entry.row.state == .queued || entry.row.state == .running, case .train = entry.spec.step else { return false }
        return true
    }

    private func index(of position: Int) -> Int {
        var low = 0, high = ready.count
        while low < high {
            let middle = (low + high) / 2
            if ready[middle].position < position { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private mutating func insertReady(_ row: Journal.TaskRow) {
        let at = index(of: row.position)
        guard at == ready.count || ready[at].id != row.id else { return }
        ready.insert((row.position, row.id), at: at)
    }

    private mutating func removeReady(_ row: Journal.TaskRow) {
        let at = index(of: row.position)
        if at < ready.count && ready[at].id == row.id { ready.remove(at: at) }
    }
}
