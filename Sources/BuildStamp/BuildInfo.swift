/// The build a program comes from: its git commit and whether the tree it was built from had
/// changes not in that commit. `scripts/build-stamp.sh` (run by the BuildStamp plugin when a
/// source file or git's HEAD, index or branch changes) writes the values; a build outside a git clone says "unknown".
public struct BuildInfo: Equatable, Sendable, CustomStringConvertible {
    /// The full commit hash, or "unknown".
    public var commit: String
    /// A hash of the uncommitted changes (tracked diff and untracked files), nil when the tree was clean.
    public var changes: String?

    /// A build of `commit`, dirty when `changes` is given.
    public init(commit: String, changes: String? = nil) {
        self.commit = commit
        self.changes = changes
    }

    /// This program's build.
    public static let current = BuildInfo(commit: stampedCommit, changes: stampedChanges.isEmpty ? nil : stampedChanges)

    /// Whether the tree had uncommitted changes.
    public var dirty: Bool { changes != nil }

    /// The form that travels in `hello` and is compared: `COMMIT`, or `COMMIT-dirty-CHANGES`,
    /// so two dirty builds of one commit match only when their changes do.
    public var identifier: String { commit + (changes.map { "-dirty-\($0)" } ?? "") }

    /// The build an `identifier` names.
    public init(identifier: String) {
        guard let marker = identifier.firstRange(of: "-dirty-") else {
            self.init(commit: identifier)
            return
        }
        self.init(commit: String(identifier[..<marker.lowerBound]), changes: String(identifier[marker.upperBound...]))
    }

    /// For people: the commit's first 12 digits, with its changes' hash when dirty.
    public var description: String {
        String(commit.prefix(12)) + (changes.map { " (dirty, changes \($0))" } ?? "")
    }
}
