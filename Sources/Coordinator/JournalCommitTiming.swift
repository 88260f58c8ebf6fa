import Foundation
import GRDB

extension Journal {
    /// Calls `record` with the seconds of every loop turn's COMMIT that wrote rows, from now
    /// on (where the journal waits for the disk). Timed around the commit in `endTurn`, not by
    /// a trace of every statement, which cost the socket thread a few percent in a fleet.
    public func timeCommits(_ record: @escaping @Sendable (Double) -> Void) throws {
        try database.writeWithoutTransaction { db in changesCommitted.with { $0 = db.totalChangesCount } }
        commitTimer.with { $0 = CommitTimer(record: record) }
    }
}
