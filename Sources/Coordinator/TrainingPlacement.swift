/// The scheduler's view of one worker at a moment, for one workload.
struct WorkerOutlook: Sendable, Equatable {
    /// The worker's name.
    var name: String
    /// Its expected images per second on the workload; nil when unknown.
    var imagesPerSecond: Double?
    /// Seconds until it can start another task: 0 with a free slot; nil when nobody can
    /// tell (a running task of unknown speed), in which case nothing waits for it.
    var freeIn: Double?
}

/// Heterogeneous workers: which worker a long training should not start on. A slow worker
/// that takes a training when a faster one is about to be free makes that training the
/// sweep's last to finish; waiting a little for the faster worker is shorter.
enum TrainingPlacement {
    /// A training waits instead of starting on a worker that would finish it more than this
    /// many times later than a faster worker would, counting the time until that worker is
    /// free. Twice leaves room for estimates that are off by tens of percent (workers
    /// sharing cores vary that much) without holding work back from a merely slightly
    /// slower worker.
    static let slowFactor = 2.0

    /// The faster worker that `candidate` should leave a training of `images` images to, or
    /// nil when `candidate` should start it now (its speed or the others' is unknown, or no
    /// faster worker would finish it more than `slowFactor` times sooner).
    static func fasterWorker(for images: Double, candidate: WorkerOutlook, others: [WorkerOutlook]) -> WorkerOutlook? {
        guard let speed = candidate.imagesPerSecond, speed > 0 else { return nil }
        let finishHere = images / speed
        return others
            .filter { $0.name != candidate.name }
            .compactMap { other -> (WorkerOutlook, Double)? in
                guard let otherSpeed = other.imagesPerSecond, otherSpeed > speed, let freeIn = other.freeIn else { return nil }
                return (other, freeIn + images / otherSpeed)
            }
            .filter { finishHere > slowFactor * $0.1 }
            .min { $0.1 < $1.1 }?.0
    }
}
