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
    /// Sums of the estimates per workload and host, and per workload: a worker without an
    /// estimate of its own borrows a mean, asked for per candidate of every dispatch.
    private struct Total: Equatable { var sum = 0.0, count = 0 }
    private var hostTotals: [String: [String: Total]] = [:], totals: [String: Total] = [:]

    /// No speeds learned yet.
    init() {}

    /// Speeds learned before (a restarted coordinator reads them from its journal).
    init(_ learned: [Estimate]) {
        for estimate in learned { set(estimate) }
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
        set(estimate)
        return estimate
    }

    private mutating func set(_ estimate: Estimate) {
        if let old = estimates[estimate.workload]?[estimate.worker] {
            hostTotals[old.workload, default: [:]][old.host, default: Total()].sum -= old.imagesPerSecond
            hostTotals[old.workload, default: [:]][old.host, default: Total()].count -= 1
            totals[old.workload, default: Total()].sum -= old.imagesPerSecond
            totals[old.workload, default: Total()].count -= 1
        }
        estimates[estimate.workload, default: [:]][estimate.worker] = estimate
        hostTotals[estimate.workload, default: [:]][estimate.host, default: Total()].sum += estimate.imagesPerSecond
        hostTotals[estimate.workload, default: [:]][estimate.host, default: Total()].count += 1
        totals[estimate.workload, default: Total()].sum += estimate.imagesPerSecond
        totals[estimate.workload, default: Total()].count += 1
    }

    /// `worker`'s expected images per second on `workload`: its own estimate, else its host's
    /// mean, else every worker's mean; nil when nobody has trained the workload.
    func imagesPerSecond(worker: String, host: String, workload: String) -> Double? {
        guard let known = estimates[workload], !known.isEmpty else { return nil }
        if let own = known[worker] { return own.imagesPerSecond }
        if let sameHost = hostTotals[workload]?[host], sameHost.count > 0 { return sameHost.sum / Double(sameHost.count) }
        return totals[workload].map { $0.sum / Double(max(1, $0.count)) }
    }

    /// The fastest learned speed on `workload` (nil when nobody has trained it): no worker's
    /// expected speed is higher, since a borrowed one is a mean of learned ones.
    func fastest(workload: String) -> Double? { estimates[workload]?.values.map(\.imagesPerSecond).max() }

    /// Every learned estimate, by worker then workload (for the status line).
    var all: [Estimate] {
        estimates.values.flatMap(\.values).sorted { ($0.worker, $0.workload) < ($1.worker, $1.workload) }
    }

}
