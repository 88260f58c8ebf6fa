/// What the coordinator has learned of its workers' training speeds: images per second of
/// epoch wall time (training, evaluation and checkpoint upload: what a task's finish depends
/// on), per worker and per workload key (`TrainingWorkload.key`), as an exponential moving
/// average of the epochs they report.
///
/// A worker that has not trained a workload yet borrows the mean of the workers on its host
/// that have (one host's slots are usually alike), else the mean of all workers; with no
/// sample at all the speed is unknown, and the scheduler then holds nothing back and starts
/// no backup on its account.
struct WorkerSpeed: Sendable, Equatable {
    /// Weight of the newest epoch in the average: two epochs make a worker's estimate mostly
    /// its own, so a worker that slows down (a competing process appears) is seen quickly.
    static let smoothing = 0.5

    /// One learned speed (the journal keeps the latest of each).
    typealias Estimate = Journal.Speed

    private var estimates: [String: [String: Estimate]] = [:]

    /// No speeds learned yet.
    init() {}

    /// Speeds learned before (a restarted coordinator reads them from its journal).
    init(_ learned: [Estimate]) {
        for estimate in learned { estimates[estimate.workload, default: [:]][estimate.worker] = estimate }
    }

    /// Folds one epoch into `worker`'s speed on `workload`: `images` trained in `seconds`.
    /// Returns the new estimate; nil (and nothing changes) for a sample that is not a
    /// positive, finite speed.
    @discardableResult
    mutating func observe(worker: String, host: String, workload: String, images: Double, seconds: Double) -> Estimate? {
        let sample = images / seconds
        guard images > 0, seconds > 0, sample.isFinite else { return nil }
        var estimate = estimates[workload]?[worker] ?? Estimate(worker: worker, host: host, workload: workload, imagesPerSecond: sample)
        estimate.imagesPerSecond += Self.smoothing * (sample - estimate.imagesPerSecond)
        estimate.host = host
        estimates[workload, default: [:]][worker] = estimate
        return estimate
    }

    /// `worker`'s expected images per second on `workload`: its own estimate, else its host's
    /// mean, else every worker's mean; nil when nobody has trained the workload.
    func imagesPerSecond(worker: String, host: String, workload: String) -> Double? {
        guard let known = estimates[workload], !known.isEmpty else { return nil }
        if let own = known[worker] { return own.imagesPerSecond }
        let sameHost = known.values.filter { $0.host == host }
        return Self.mean(sameHost.isEmpty ? Array(known.values) : sameHost)
    }

    /// Every learned estimate, by worker then workload (for the status line).
    var all: [Estimate] {
        estimates.values.flatMap(\.values).sorted { ($0.worker, $0.workload) < ($1.worker, $1.workload) }
    }

    private static func mean(_ estimates: [Estimate]) -> Double {
        estimates.reduce(0) { $0 + $1.imagesPerSecond } / Double(estimates.count)
    }
}
