import Foundation
import Model
import TaskRuntime

/// What a sweep would run, without running it (`coordinator plan`): tasks by kind, trainings,
/// what sharing saves, and the training compute on each device kind with a known speed.
public struct PlanSummary: Codable, Sendable {
    /// The sweep as planned (a first-format file appears converted).
    public var sweep: SweepSpec
    /// Tasks in all and by kind (`init`, `train`, `prune`).
    public var tasks: Int, byKind: [String: Int]
    /// Trainings, and those reported as results.
    public var trainings: Int, reportedTrainings: Int
    /// Experiment points (seed × sweep-grid point × experiment-grid point).
    public var points: Int
    /// Tasks that more than one point uses (θ0, dense runs, θK, first prunes), and trainings among them.
    public var sharedTasks: Int, sharedTrainings: Int
    /// Trainings the points would run if each planned its own: what sharing saves is the difference.
    public var trainingsWithoutSharing: Int
    /// Training epochs and images (images per epoch × epochs) over all trainings.
    public var epochs: Int, images: Double
    /// The estimated training time per device kind.
    public var estimates: [Estimate]

    /// The compute one device kind needs: images ÷ its speed, over the trainings it has a speed for.
    public struct Estimate: Codable, Sendable {
        /// The device kind ("cpu on host-a", "NVIDIA H200").
        public var device: String
        /// Where the speed comes from ("journal", "worker bench FILE").
        public var source: String
        /// Seconds of training on one such device, over `covered` of the trainings.
        public var seconds: Double, covered: Int
    }

    /// A device kind's speed: images per second by workload key (`TrainingWorkload.key`), or one for every key.
    public struct Speed: Sendable {
        /// The device kind and where its speed comes from.
        public var device: String, source: String
        /// Images per second by workload key; `any` for every training.
        public var byWorkload: [String: Double], any: Double?

        /// A speed for every workload.
        public init(device: String, source: String, byWorkload: [String: Double] = [:], any: Double? = nil) {
            self.device = device
            self.source = source
            self.byWorkload = byWorkload
            self.any = any
        }
    }

    /// The summary of `plan` of `sweep` with `speeds` per device kind.
    public init(sweep: SweepSpec, plan: SweepPlan, speeds: [Speed]) {
        self.sweep = sweep
        tasks = plan.tasks.count
        byKind = Dictionary(grouping: plan.tasks) { task in
            switch task.step { case .initialise: "init"; case .train: "train"; case .prune: "prune" }
        }.mapValues(\.count)
        let trainings = plan.tasks.compactMap { task in TrainingWorkload(task).map { (task, $0) } }
        self.trainings = trainings.count
        reportedTrainings = trainings.filter { $0.0.labels.reported }.count
        points = plan.points
        sharedTasks = plan.tasks.filter { plan.uses[$0.id, default: 0] > 1 }.count
        sharedTrainings = trainings.filter { plan.uses[$0.0.id, default: 0] > 1 }.count
        trainingsWithoutSharing = trainings.reduce(0) { $0 + Swift.max(1, plan.uses[$1.0.id, default: 1]) }
        epochs = trainings.reduce(0) { $0 + $1.1.epochs - $1.1.startEpoch }
        images = trainings.reduce(0) { $0 + $1.1.imagesLeft(after: 0) }
        estimates = speeds.map { speed in
            var seconds = 0.0, covered = 0
            for (_, workload) in trainings {
                guard let rate = speed.byWorkload[workload.key] ?? speed.any, rate > 0 else { continue }
                seconds += workload.imagesLeft(after: 0) / rate
                covered += 1
            }
            return Estimate(device: speed.device, source: speed.source, seconds: seconds, covered: covered)
        }
    }

    /// The speeds a journal learned, per device kind: the device its workers trained on (from
    /// their results) and their host; a kind's speed on a workload is its workers' mean.
    public static func speeds(journal: Journal) throws -> [Speed] {
        let records = try journal.results().compactMap { try? JSONDecoder().decode(ResultRecord.self, from: Data($0.utf8)) }
        let device = Dictionary(records.map { ($0.worker, $0.device ?? "cpu") }) { a, _ in a }
        var samples: [String: [String: [Double]]] = [:]
        for speed in try journal.speeds() {
            samples["\(device[speed.worker] ?? "cpu") on \(speed.host)", default: [:]][speed.workload, default: []].append(speed.imagesPerSecond)
        }
        return samples.sorted { $0.key < $1.key }.map { kind, byWorkload in
            Speed(device: kind, source: "journal", byWorkload: byWorkload.mapValues { $0.reduce(0, +) / Double($0.count) })
        }
    }

    /// The training speed of a `worker bench --json` file, for every workload (the bench's width and batch stand for all).
    public static func speed(bench url: URL) throws(SweepError) -> Speed {
        struct Bench: Decodable { var device: [String: String]; var lines: [Benchmark.Line] }
        let bench: Bench
        do { bench = try JSONDecoder().decode(Bench.self, from: Data(contentsOf: url)) } catch {
            throw .invalid("\(url.path) is not a `worker bench --json` file: \(error.localizedDescription)")
        }
        guard let line = bench.lines.first(where: { $0.name.hasPrefix("training") && $0.unit == "images/s" }) else {
            throw .invalid("\(url.path) has no training speed (a line \"training …\" in images/s); run worker bench --json FILE again")
        }
        return Speed(device: bench.device["name"] ?? "device", source: "worker bench \(url.lastPathComponent): \(line.name)", any: line.value)
    }

    /// The summary as lines for a terminal.
    public var lines: [String] {
        func hours(_ seconds: Double) -> String {
            seconds < 120 ? String(format: "%.0f s", seconds) : seconds < 7200 ? String(format: "%.0f min", seconds / 60) : String(format: "%.1f h", seconds / 3600)
        }
        let kinds = ["init", "prune", "train"].map { "\(byKind[$0] ?? 0) \($0)" }.joined(separator: ", ")
        var lines = [
            "sweep \(sweep.name) on preset \(sweep.preset): \(sweep.seeds.count) seed(s), \(sweep.experiments.count) experiment(s), \(points) experiment points",
            "tasks: \(tasks) (\(kinds))",
            "trainings: \(trainings) (\(reportedTrainings) reported as results), \(epochs) epochs, \(String(format: "%.3g", images)) images",
            "shared: \(sharedTasks) tasks used by more than one point (\(sharedTrainings) trainings); without sharing the points would run \(trainingsWithoutSharing) trainings, \(trainingsWithoutSharing - trainings) more",
        ]
        if estimates.isEmpty {
            lines.append("compute: no speed known (run a sweep in this run directory, or pass --bench FILE from worker bench --json)")
        }
        for estimate in estimates {
            let coverage = estimate.covered == trainings ? "" : " (\(estimate.covered) of \(trainings) trainings have a speed on it)"
            lines.append("compute on one \(estimate.device): \(hours(estimate.seconds)) of training\(coverage) [\(estimate.source)]")
        }
        return lines
    }
}
