/// The free workers of one dispatch in the order a task of one workload prefers them: fewest
/// tasks held, then (for a training) fastest, then by name. Made once per dispatch and kept
/// as tasks are placed, so that choosing a worker looks at the front of the order instead of
/// comparing every free worker per task. An entry goes stale when its worker is placed (its
/// task count changes) or closes; stale entries are skipped and dropped from the front.
struct CandidateOrder {
    /// A free worker as the order sees it.
    struct Candidate: Comparable {
        /// Tasks it held when it was ordered; its speed on the workload (0 when unknown); its name.
        var running: Int, speed: Double, name: String

        static func < (a: Candidate, b: Candidate) -> Bool {
            if a.running != b.running { return a.running < b.running }
            if a.speed != b.speed { return a.speed > b.speed }
            return a.name < b.name
        }
    }

    /// The workload the order is for (nil: a step that is not a training).
    let workload: TrainingWorkload?
    private var order: [Candidate]
    private var head = 0

    /// The order of `candidates` for `workload`.
    init(_ workload: TrainingWorkload?, _ candidates: [Candidate]) {
        self.workload = workload
        order = candidates.sorted()
    }

    /// The first candidate that is `current` and `usable`; stale ones at the front are dropped.
    mutating func first(current: (Candidate) -> Bool, usable: (Candidate) -> Bool) -> Candidate? {
        while head < order.count && !current(order[head]) { head += 1 }
        return order[head...].first { current($0) && usable($0) }
    }

    /// Adds `candidate` at its place (a worker placed that still has a free slot).
    mutating func insert(_ candidate: Candidate) {
        var low = head, high = order.count
        while low < high {
            let middle = (low + high) / 2
            if order[middle] < candidate { low = middle + 1 } else { high = middle }
        }
        order.insert(candidate, at: low)
    }
}
