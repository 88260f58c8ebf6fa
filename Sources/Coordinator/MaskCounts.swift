import Model

/// The kept weights of the masks that passed checks have counted, by hash and by the
/// architecture they were checked for. A training that reads one of them is checked against
/// the count (`ResultCheck`'s `inputMaskKept`) instead of reading, hashing and counting the
/// mask again: the hash names the bytes, so the count stays true. One entry per mask of the
/// sweep; a restarted coordinator starts empty and counts a mask at its first check.
struct MaskCounts: Sendable {
    private struct Key: Hashable {
        var hash: String, architecture: ResNet18.Architecture
    }

    private var kept: [Key: Int] = [:]

    /// The kept count of mask `hash` for `architecture`, if a passed check counted it.
    func kept(_ hash: String, for architecture: ResNet18.Architecture) -> Int? {
        kept[Key(hash: hash, architecture: architecture)]
    }

    /// Remembers the masks `verdict` counted for `architecture`, if it passed.
    mutating func remember(_ verdict: ResultCheck, for architecture: ResNet18.Architecture) {
        guard verdict.failure == nil else { return }
        for (hash, count) in verdict.maskKept { kept[Key(hash: hash, architecture: architecture)] = count }
    }
}
