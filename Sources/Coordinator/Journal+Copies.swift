import Foundation
import GRDB
import TaskRuntime

/// Backup copies and learned speeds in the journal. A backup is an attempt like any other
/// (its own number, worker and outcome) that names the attempt it copies in `backupOf`; the
/// copy that loses the race ends as `superseded`. Journals from before have no backups, and
/// read the same (the new column is null for their attempts).
extension Journal {
    /// The schema change that keeps older journals readable: a nullable column and a table.
    static func registerCopies(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v2-backup-copies") { db in
            try db.alter(table: "attempt") { t in t.add(column: "backupOf", .integer) }
            try db.create(table: "speed") { t in
                t.column("worker", .text).notNull()
                t.column("host", .text).notNull()
                t.column("workload", .text).notNull()
                t.column("imagesPerSecond", .double).notNull()
                t.column("updated", .double).notNull()
                t.primaryKey(["worker", "workload"])
            }
        }
    }

    /// Starts a backup of `original`, a running attempt of `task`, on `worker`; returns the
    /// backup's attempt number. The task stays running (both copies are its attempts).
    public func startBackup(_ task: String, worker: String, of original: Int) throws -> Int {
        try write { db in
            guard var row = try Self.taskRow(db, task), row.state == .running else {
                throw SweepError.invalid("cannot back up task \(task.prefix(12)): it is not running (a backup copies a running attempt)")
            }
            row.attempts += 1
            try Self.update(db, row)
            try Self.execute(db, "INSERT INTO attempt (task, number, worker, started, backupOf) VALUES (?, ?, ?, ?, ?)",
                           [task, row.attempts, worker, Self.now(), original])
            try Self.event(db, "backup", "{\"task\":\"\(task)\",\"attempt\":\(row.attempts),\"of\":\(original),\"worker\":\"\(worker)\"}")
            return row.attempts
        }
    }

    /// How a copy ended while another copy of its task runs on.
    public enum CopyEnd: String, Sendable {
        /// Its worker reported an error, or its outputs were refused.
        case error
        /// Its worker was lost or stalled.
        case lost
    }

    /// Ends `attempt` of `task` while another copy runs on: the task stays running and no
    /// failure counts against it (the other copy may still finish it). It ended `endedAt`
    /// (now by default).
    public func endCopy(_ task: String, attempt: Int, _ end: CopyEnd, message: String, endedAt: Double? = nil) throws {
        try write { db in
            try Self.execute(db, "UPDATE attempt SET ended = ?, outcome = ? WHERE task = ? AND number = ? AND ended IS NULL",
                           [endedAt ?? Self.now(), end.rawValue, task, attempt])
            let detail = String(decoding: try JSONEncoder().encode(["task": task, "attempt": String(attempt), "message": message]), as: UTF8.self)
            try Self.event(db, "copy-\(end.rawValue)", detail)
        }
    }

    /// Records a worker's learned speed on a workload (the latest estimate replaces the last).
    public func noteSpeed(worker: String, host: String, workload: String, imagesPerSecond: Double) throws {
        try write { db in
            // Through the statement cache: a fleet's workers note a speed per epoch, and parsing
            // this statement each time was a tenth of the socket thread at 1,000 workers.
            try Self.execute(db, """
                INSERT INTO speed (worker, host, workload, imagesPerSecond, updated) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (worker, workload) DO UPDATE SET host = excluded.host, imagesPerSecond = excluded.imagesPerSecond, updated = excluded.updated
                """, [worker, host, workload, imagesPerSecond, Self.now()])
        }
    }

    /// One learned speed: a worker's images per second on a workload key.
    public struct Speed: Sendable, Equatable {
        /// The worker, its host and the workload key (`TrainingWorkload.key`).
        public var worker: String, host: String, workload: String
        /// Images per second of epoch wall time.
        public var imagesPerSecond: Double
    }

    /// Every learned speed, by worker and workload.
    public func speeds() throws -> [Speed] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT worker, host, workload, imagesPerSecond FROM speed ORDER BY worker, workload").map {
                Speed(worker: $0["worker"], host: $0["host"], workload: $0["workload"], imagesPerSecond: $0["imagesPerSecond"])
            }
        }
    }

    /// One attempt as `coordinator status` shows it, backups included.
    public struct AttemptRecord: Sendable, Equatable {
        /// The task, the attempt's number and its worker.
        public var task: String, number: Int, worker: String
        /// The attempt this one backs up (nil for an ordinary attempt).
        public var backupOf: Int?
        /// How it ended (`done`, `superseded`, `error`, `lost`, `interrupted`); nil while it runs.
        public var outcome: String?
    }

    /// Every attempt of `task`, in order.
    public func attemptRecords(_ task: String) throws -> [AttemptRecord] {
        try database.read { db in
            try Row.fetchAll(db, sql: "SELECT task, number, worker, backupOf, outcome FROM attempt WHERE task = ? ORDER BY number", arguments: [task]).map {
                AttemptRecord(task: $0["task"], number: $0["number"], worker: $0["worker"], backupOf: $0["backupOf"], outcome: $0["outcome"])
            }
        }
    }

    /// The tasks that had a backup attempt, in plan order.
    public func backedUpTasks() throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT task.id FROM task JOIN attempt ON attempt.task = task.id WHERE attempt.backupOf IS NOT NULL ORDER BY task.position")
        }
    }
}
