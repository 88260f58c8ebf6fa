import Foundation
import GRDB
import Protocol
import TaskRuntime

/// The sweep's durable state, in SQLite in the run directory: the sweep, its tasks, every
/// attempt, accepted results and an append-only event log. Every change is committed (with
/// its event) before the coordinator acknowledges anything, so a coordinator killed at any
/// moment restarts from exactly what it had promised.
public final class Journal: Sendable {
    /// A task's lifecycle.
    public enum State: String, Codable, Sendable {
        /// Waiting for its inputs or for a worker.
        case queued
        /// Handed to a worker.
        case running
        /// Finished; its outputs are in the artifact store.
        case done
        /// Failed more often than the retry limit allows.
        case failed
    }

    /// One task's row.
    public struct TaskRow: Codable, FetchableRecord, PersistableRecord, Sendable, Equatable {
        public static let databaseTableName = "task"
        /// The task id and its specification (JSON of `TaskSpec`).
        public var id: String, spec: String
        /// Position in the plan (inputs first).
        public var position: Int
        /// Where it stands.
        public var state: State
        /// Attempts started, and attempts that failed by error (lost workers do not count).
        public var attempts: Int, failures: Int
        /// Output artifacts by role (JSON), once done.
        public var outputs: String?
        /// The last epoch checkpoint's artifact hash, to resume from after a lost worker.
        public var checkpoint: String?

        /// A row read by column name (GRDB's `Decodable` path was a fortieth of the socket
        /// thread at 1,000 workers, which reads a row back after every change it makes).
        public init(row: Row) throws {
            guard let state = State(rawValue: row["state"]) else {
                throw SweepError.invalid("task \(String(describing: row["id"] as String?)) has the unknown state \(String(describing: row["state"] as String?)) in the journal")
            }
            self.init(id: row["id"], spec: row["spec"], position: row["position"], state: state, attempts: row["attempts"], failures: row["failures"],
                      outputs: row["outputs"], checkpoint: row["checkpoint"])
        }

        /// A row from its values.
        public init(id: String, spec: String, position: Int, state: State, attempts: Int, failures: Int, outputs: String? = nil, checkpoint: String? = nil) {
            self.id = id
            self.spec = spec
            self.position = position
            self.state = state
            self.attempts = attempts
            self.failures = failures
            self.outputs = outputs
            self.checkpoint = checkpoint
        }
    }

    /// The database; `Journal+Copies.swift` extends the schema.
    let database: DatabaseQueue
    /// Hears each turn's commit time (`timeCommits`), and the row changes counted at the last
    /// timed commit (a turn that changed nothing commits nothing worth timing).
    struct CommitTimer: Sendable { let record: @Sendable (Double) -> Void }
    let commitTimer = Locked<CommitTimer?>(nil), changesCommitted = Locked(0)

    /// Opens (creating if needed) the journal `journal.sqlite` in `directory`.
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        // The server keeps one transaction open per loop turn (`beginTurn`, `endTurn`).
        configuration.allowsUnsafeTransactions = true
        // Write-ahead logging: a reader (`coordinator status`, the dashboard, the report) never
        // holds up the server's commit of a turn, as it did with a rollback journal (where a
        // commit waited for every reader to let go: seconds of a stalled socket thread).
        // Commits are not synced to the disk one by one (`synchronous = NORMAL`): the log is
        // synced before each checkpoint, which the run loop makes every quarter second
        // (`checkpoint`). A killed coordinator loses nothing (the log is in the OS's cache); a
        // power loss or kernel crash can lose the last quarter second of turns, whose tasks
        // then run again after the restart. A sync per turn stalled the socket thread for
        // 25–160 ms whenever the disk was busy (1,000 simulated workers), longer than a turn.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL") }
        database = try DatabaseQueue(path: directory.appendingPathComponent("journal.sqlite").path, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "sweep") { t in
                t.column("id", .integer).primaryKey()
                t.column("name", .text).notNull()
                t.column("spec", .text).notNull()
            }
            try db.create(table: "task") { t in
                t.column("id", .text).primaryKey()
                t.column("spec", .text).notNull()
                t.column("position", .integer).notNull()
                t.column("state", .text).notNull()
                t.column("attempts", .integer).notNull()
                t.column("failures", .integer).notNull()
                t.column("outputs", .text)
                t.column("checkpoint", .text)
            }
            try db.create(table: "attempt") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("task", .text).notNull().references("task")
                t.column("number", .integer).notNull()
                t.column("worker", .text).notNull()
                t.column("started", .double).notNull()
                t.column("ended", .double)
                t.column("outcome", .text)
            }
            try db.create(table: "result") { t in
                t.column("task", .text).primaryKey().references("task")
                t.column("record", .text).notNull()
            }
            try db.create(table: "event") { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("time", .double).notNull()
                t.column("kind", .text).notNull()
                t.column("detail", .text).notNull()
            }
        }
        Self.registerCopies(&migrator)
        // A fleet's journal holds tens of thousands of attempts and events: the per-result
        // updates of a task's attempts, and the counts of an event kind, must not scan them all.
        migrator.registerMigration("indexes") { db in
            try db.create(index: "attempt_task", on: "attempt", columns: ["task", "number"], ifNotExists: true)
            try db.create(index: "event_kind", on: "event", columns: ["kind"], ifNotExists: true)
        }
        do {
            try migrator.migrate(database)
        } catch {
            // Another process (a `coordinator status`, a test) created the tables between our
            // check and our write; its migration is committed now, so the second pass is a no-op.
            try migrator.migrate(database)
        }
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Runs `updates` in a transaction of its own, or, inside a turn (`beginTurn`), in a
    /// savepoint of the turn's transaction, committed with the turn.
    func write<T>(_ updates: (Database) throws -> T) throws -> T {
        try database.writeWithoutTransaction { db in
            var result: T?
            try db.inSavepoint {
                result = try updates(db)
                return .commit
            }
            guard let result else { throw SweepError.invalid("a journal write returned nothing") }
            return result
        }
    }

    /// Opens a transaction that the writes until `endTurn` join: the server's loop turn
    /// commits its changes once, not once per message. Nothing the turn answers goes out
    /// before `endTurn` (the socket loop sends queued frames at its next turn).
    public func beginTurn() throws {
        try database.writeWithoutTransaction { db in
            if !db.isInsideTransaction { try db.beginTransaction(.immediate) }
        }
    }

    /// Commits the turn's transaction, if one is open; a commit that wrote rows is timed for
    /// `timeCommits`.
    public func endTurn() throws {
        let timer = commitTimer.with { $0 }
        try database.writeWithoutTransaction { db in
            guard db.isInsideTransaction else { return }
            guard let timer, db.totalChangesCount != changesCommitted.with({ $0 }) else { return try db.commit() }
            let begun = DispatchTime.now().uptimeNanoseconds
            try db.commit()
            timer.record(Double(DispatchTime.now().uptimeNanoseconds - begun) / 1e9)
            changesCommitted.with { $0 = db.totalChangesCount }
        }
    }

    /// Copies what it can of the write-ahead log into the database without waiting for any
    /// reader or writer (a passive checkpoint). The run loop does it beside the server: SQLite
    /// otherwise copies the log inside the commit that fills it past 1,000 pages, and such a
    /// commit held the server's loop turn for 150–250 ms in a 1,000-worker sweep; this way that
    /// commit finds the log copied already. (The server keeps its own checkpoints: only a
    /// writer that finds the whole log copied starts it again from the top, so without them
    /// the log grew to 800 MB in one sweep.)
    public func checkpoint() throws {
        try database.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
    }

    /// Runs `sql` through the connection's statement cache: the journal's per-message writes
    /// (a fleet makes hundreds a second) neither parse their SQL again nor generate it.
    static func execute(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// The row of task `id`, read through a cached statement.
    static func taskRow(_ db: Database, _ id: String) throws -> TaskRow? {
        try TaskRow.fetchOne(db.cachedStatement(sql: "SELECT * FROM task WHERE id = ?"), arguments: [id])
    }

    /// Writes what a task's row can change (its state, counts, outputs and checkpoint).
    static func update(_ db: Database, _ row: TaskRow) throws {
        try execute(db, "UPDATE task SET state = ?, attempts = ?, failures = ?, outputs = ?, checkpoint = ? WHERE id = ?",
                    [row.state.rawValue, row.attempts, row.failures, row.outputs, row.checkpoint, row.id])
    }

    static func event(_ db: Database, _ kind: String, _ detail: String) throws {
        try Self.execute(db, "INSERT INTO event (time, kind, detail) VALUES (?, ?, ?)", [now(), kind, detail])
    }

    /// Records the sweep and its planned tasks. On an existing journal the sweep must be the
    /// same; a changed sweep is refused unless `extend` is set, in which case new tasks are
    /// added and existing ones kept. Returns the number of tasks added.
    @discardableResult
    public func record(sweep: SweepSpec, plan: SweepPlan, extend: Bool) throws -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let specJSON = String(decoding: try encoder.encode(sweep), as: UTF8.self)
        return try write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT spec FROM sweep WHERE id = 1") {
                if existing != specJSON && !extend && !Self.plansAlike(existing, plan) {
                    throw SweepError.invalid("this run directory holds a different sweep; rerun with the same sweep, pass --extend to add the new tasks, or use a fresh --run-dir")
                }
                try Self.execute(db, "UPDATE sweep SET spec = ?, name = ? WHERE id = 1", [specJSON, sweep.name])
            } else {
                try Self.execute(db, "INSERT INTO sweep (id, name, spec) VALUES (1, ?, ?)", [sweep.name, specJSON])
            }
            var added = 0
            let known = Set(try String.fetchAll(db, sql: "SELECT id FROM task"))
            let base = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(position) + 1, 0) FROM task") ?? 0
            for task in plan.tasks where !known.contains(task.id) {
                let spec = String(decoding: try encoder.encode(task), as: UTF8.self)
                try TaskRow(id: task.id, spec: spec, position: base + added, state: .queued, attempts: 0, failures: 0).insert(db)
                added += 1
            }
            try Self.event(db, "plan", "{\"sweep\":\"\(sweep.name)\",\"added\":\(added)}")
            return added
        }
    }

    /// Whether the recorded sweep `json` plans exactly the tasks of `plan`: the same sweep
    /// written another way (a first-format file, a built-in that became a file, a new
    /// description), which needs no `--extend`; the record then takes the new form.
    static func plansAlike(_ json: String, _ plan: SweepPlan) -> Bool {
        guard let recorded = try? JSONDecoder().decode(SweepSpec.self, from: Data(json.utf8)),
              let recordedPlan = try? SweepPlan(recorded) else { return false }
        return Set(recordedPlan.tasks.map(\.id)) == Set(plan.tasks.map(\.id))
    }

    /// The sweep recorded in this journal (the last one, after `--extend`); nil in a fresh one.
    public func sweep() throws -> SweepSpec? {
        let spec = try database.read { db in try String.fetchOne(db, sql: "SELECT spec FROM sweep WHERE id = 1") }
        return try spec.map { try JSONDecoder().decode(SweepSpec.self, from: Data($0.utf8)) }
    }

    /// Every task, in plan order.
    public func tasks() throws -> [TaskRow] {
        try database.read { db in try TaskRow.order(Column("position")).fetchAll(db) }
    }

    /// The number of tasks in each state.
    public func stateCounts() throws -> [State: Int] {
        try database.read { db in
            var counts: [State: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM task GROUP BY state") {
                if let state = State(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }

    /// Queued tasks whose inputs are all done, in plan order.
    public func runnable() throws -> [TaskRow] {
        let all = try tasks()
        let done = Set(all.filter { $0.state == .done }.map(\.id))
        return all.filter { row in
            guard row.state == .queued, let spec = try? JSONDecoder().decode(TaskSpec.self, from: Data(row.spec.utf8)) else { return false }
            return spec.inputs.values.allSatisfy(done.contains)
        }
    }

    /// The artifact hashes a task reads, by role: a `mask` input is its producer's mask, any
    /// other input its producer's weights; plus the task's last checkpoint, if it has one.
    public func inputArtifacts(of row: TaskRow, spec: TaskSpec) throws -> [String: String] {
        var rows: [String: TaskRow] = [:]
        for producer in spec.inputs.values { rows[producer] = try task(producer) }
        return Self.inputArtifacts(of: row, spec: spec) { rows[$0]?.outputs }
    }

    /// `inputArtifacts` with each producer's outputs (JSON, nil until done) from `outputsOf`.
    static func inputArtifacts(of row: TaskRow, spec: TaskSpec, outputsOf: (String) -> String?) -> [String: String] {
        inputArtifacts(of: row, spec: spec) { producer in outputsOf(producer).flatMap(decodedOutputs) }
    }

    /// `inputArtifacts` with each producer's outputs by role (nil until done) from `outputsOf`.
    static func inputArtifacts(of row: TaskRow, spec: TaskSpec, outputsOf: (String) -> [String: String]?) -> [String: String] {
        var inputs: [String: String] = [:]
        for (role, producer) in spec.inputs {
            guard let outputs = outputsOf(producer) else { continue }
            inputs[role] = outputs[role == "mask" ? "mask" : "weights"]
        }
        if let checkpoint = row.checkpoint { inputs["checkpoint"] = checkpoint }
        return inputs
    }

    /// A row's `outputs` JSON by role (nil when it does not decode).
    static func decodedOutputs(_ json: String) -> [String: String]? {
        try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))
    }

    /// Marks `task` running on `worker` and returns the attempt number.
    public func start(_ task: String, worker: String) throws -> Int { try started(task, worker: worker).attempts }

    /// `start`, returning the task's new row: the server hands it to its `TaskBoard` instead
    /// of reading it back (a read per start and per result on the socket thread).
    func started(_ task: String, worker: String) throws -> TaskRow {
        try write { db in
            guard var row = try Self.taskRow(db, task) else { throw SweepError.invalid("unknown task \(task)") }
            row.state = .running
            row.attempts += 1
            try Self.update(db, row)
            try Self.execute(db, "INSERT INTO attempt (task, number, worker, started) VALUES (?, ?, ?, ?)",
                           [task, row.attempts, worker, Self.now()])
            try Self.event(db, "start", "{\"task\":\"\(task)\",\"attempt\":\(row.attempts),\"worker\":\"\(worker)\"}")
            return row
        }
    }

    /// One task's row, if the journal has it.
    public func task(_ id: String) throws -> TaskRow? {
        // Through the writer's connection: a read-only access would switch `query_only` on and
        // off around each read, and the server reads a row back after every change it makes.
        try database.writeWithoutTransaction { db in try Self.taskRow(db, id) }
    }

    /// A reconnecting worker still runs `task`, which a coordinator restart (or a declared
    /// loss) put back in the queue: mark it running on `worker` again, under its last attempt,
    /// instead of starting it twice. Returns the attempt, or nil when the task is not queued.
    public func adopt(_ task: String, worker: String) throws -> Int? {
        try write { db in
            guard var row = try Self.taskRow(db, task), row.state == .queued, row.attempts > 0 else { return nil }
            row.state = .running
            try Self.update(db, row)
            // With a backup, the last attempt may be the other copy's: the worker runs its own.
            let attempt = try Int.fetchOne(db, sql: "SELECT MAX(number) FROM attempt WHERE task = ? AND worker = ?", arguments: [task, worker]) ?? row.attempts
            try Self.execute(db, "UPDATE attempt SET ended = NULL, outcome = NULL, worker = ? WHERE task = ? AND number = ?",
                           [worker, task, attempt])
            try Self.event(db, "adopt", "{\"task\":\"\(task)\",\"attempt\":\(attempt),\"worker\":\"\(worker)\"}")
            return attempt
        }
    }

    /// Appends an event that changes no task (a worker joined or was lost, a frame was rejected…).
    public func note(_ kind: String, _ detail: [String: String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(detail), as: UTF8.self)
        try write { db in try Self.event(db, kind, json) }
    }

    /// One attempt: its task, worker and times (seconds since 1970; `ended` nil while it runs).
    public struct Attempt: Sendable {
        /// The task, the worker and the attempt's number.
        public var task: String, worker: String, number: Int
        /// When it started and ended.
        public var started: Double, ended: Double?
    }

    /// Every attempt, in the order they started.
    public func attempts() throws -> [Attempt] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT task, worker, number, started, ended FROM attempt ORDER BY started").map {
                Attempt(task: $0["task"], worker: $0["worker"], number: $0["number"], started: $0["started"], ended: $0["ended"])
            }
        }
    }

    /// The workers of each attempt of `task`, in order (the fault tests read this).
    public func attemptWorkers(_ task: String) throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT worker FROM attempt WHERE task = ? ORDER BY number", arguments: [task])
        }
    }

    /// Remembers the latest epoch checkpoint of a running task.
    public func checkpoint(_ task: String, artifact: String) throws {
        try write { db in
            try Self.execute(db, "UPDATE task SET checkpoint = ? WHERE id = ?", [artifact, task])
            try Self.event(db, "checkpoint", "{\"task\":\"\(task)\",\"artifact\":\"\(artifact)\"}")
        }
    }

    /// Accepts a result once per task: returns false (and changes nothing) for a duplicate.
    /// The attempt ended `endedAt` (when its result arrived; now by default).
    public func complete(_ task: String, attempt: Int, outputs: [String: String], record: String, endedAt: Double? = nil) throws -> Bool {
        try completed(task, attempt: attempt, outputs: outputs, record: record, endedAt: endedAt) != nil
    }

    /// `complete`, returning the task's new row (nil for a duplicate, which changes no row).
    func completed(_ task: String, attempt: Int, outputs: [String: String], record: String, endedAt: Double? = nil) throws -> TaskRow? {
        try write { db -> TaskRow? in
            guard var row = try Self.taskRow(db, task), row.state != .done else {
                try Self.event(db, "duplicate-result", "{\"task\":\"\(task)\",\"attempt\":\(attempt)}")
                return nil
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            row.state = .done
            row.outputs = String(decoding: try encoder.encode(outputs), as: UTF8.self)
            try Self.update(db, row)
            try Self.execute(db, "INSERT INTO result (task, record) VALUES (?, ?)", [task, record])
            try Self.execute(db, "UPDATE attempt SET ended = ?, outcome = 'done' WHERE task = ? AND number = ?",
                           [endedAt ?? Self.now(), task, attempt])
            // A backup and its original race: the other copy, still open, lost.
            try Self.execute(db, "UPDATE attempt SET ended = ?, outcome = 'superseded' WHERE task = ? AND number != ? AND ended IS NULL",
                           [Self.now(), task, attempt])
            try Self.event(db, "done", "{\"task\":\"\(task)\",\"attempt\":\(attempt)}")
            return row
        }
    }

    /// Ends a running attempt without a result. A lost worker re-queues the task without
    /// counting a failure; an error counts, and past `retryLimit` failures the task fails. The
    /// attempt ended `endedAt` (now by default).
    public func abandon(_ task: String, attempt: Int, lostWorker: Bool, message: String, retryLimit: Int, endedAt: Double? = nil) throws {
        try write { db in
            guard var row = try Self.taskRow(db, task), row.state == .running else { return }
            if !lostWorker { row.failures += 1 }
            row.state = row.failures > retryLimit ? .failed : .queued
            try Self.update(db, row)
            try Self.execute(db, "UPDATE attempt SET ended = ?, outcome = ? WHERE task = ? AND number = ?",
                           [endedAt ?? Self.now(), lostWorker ? "lost" : "error", task, attempt])
            let detail = String(decoding: try JSONEncoder().encode(["task": task, "message": message]), as: UTF8.self)
            try Self.event(db, lostWorker ? "lost" : "error", detail)
        }
    }

    /// After a coordinator restart: every task still marked running goes back to the queue
    /// (its worker may reconnect and report, and the result is then accepted once); returns them.
    @discardableResult
    public func requeueInterrupted() throws -> [String] {
        try write { db in
            let running = try String.fetchAll(db, sql: "SELECT id FROM task WHERE state = 'running'")
            try db.execute(sql: "UPDATE task SET state = 'queued' WHERE state = 'running'")
            try Self.execute(db, "UPDATE attempt SET ended = ?, outcome = 'interrupted' WHERE ended IS NULL", [Self.now()])
            try Self.event(db, "restart", "{\"requeued\":\(running.count)}")
            return running
        }
    }

    /// Accepted result records of reported tasks, in plan order.
    public func results() throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT result.record FROM result JOIN task ON task.id = result.task WHERE result.record != '{}' ORDER BY task.position")
        }
    }

    /// How many attempts each task has had, by task id (the fault tests read this).
    public func attemptCounts() throws -> [String: Int] {
        try database.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, attempts FROM task").map { ($0["id"], $0["attempts"]) })
        }
    }

    /// Occurrences recorded by events of `kind`: throttled reports carry a `count` field (one
    /// event per reason and interval), any other event counts once.
    public func occurrences(_ kind: String) throws -> Int {
        try database.read { db in
            try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(COALESCE(CAST(json_extract(detail, '$.count') AS INTEGER), 1)), 0) FROM event WHERE kind = ?",
                             arguments: [kind]) ?? 0
        }
    }

    /// The details of the events of `kind`, oldest first.
    public func events(_ kind: String) throws -> [[String: String]] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT detail FROM event WHERE kind = ? ORDER BY rowid", arguments: [kind])
                .compactMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
        }
    }

    /// The number of events of `kind` in the log.
    public func eventCount(_ kind: String) throws -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM event WHERE kind = ?", arguments: [kind]) ?? 0 }
    }
}
