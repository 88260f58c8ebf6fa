import Foundation
import GRDB

extension Journal {
    /// Calls `record` with the seconds of every write transaction's COMMIT from now on
    /// (SQLite's own timing of the statement, which is where the journal waits for the disk).
    public func timeCommits(_ record: @escaping @Sendable (Double) -> Void) throws {
        try database.writeWithoutTransaction { db in
            // Reads run in transactions too; only a commit that changed rows is a write's.
            var changesSeen = db.totalChangesCount
            db.trace(options: .profile) { [unowned db] event in
                guard case .profile(let statement, let duration) = event, statement.sql.hasPrefix("COMMIT") else { return }
                let changes = db.totalChangesCount
                guard changes != changesSeen else { return }
                changesSeen = changes
                record(duration)
            }
        }
    }
}
