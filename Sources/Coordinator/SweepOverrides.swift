import Foundation
import Model
import TaskRuntime

extension SweepSpec {
    /// Preset fields a sweep fixes (nil keeps the preset's value): the sweep's and each
    /// experiment's `set`, and on the command line `--set FIELD=VALUE`.
    public struct Overrides: Codable, Hashable, Sendable {
        /// The dataset (`cifar10`, `fashion-mnist`, `synthetic`).
        public var dataset: String?
        /// Network width, epochs, batch size, images used.
        public var width: Int?, epochs: Int?, batchSize: Int?, trainLimit: Int?, testLimit: Int?, validationSize: Int?
        /// Base learning rate, momentum and weight decay.
        public var learningRate: Double?, momentum: Double?, weightDecay: Double?
        /// The schedule (`cosine`, `constant`, `multistep`) and, for `multistep`, its milestones and factor.
        public var schedule: String?, milestones: [Int]?, gamma: Double?
        /// Random crop and flip.
        public var augment: Bool?
        /// GPU arithmetic (`fp32`, `tf32`); unset leaves it to the device (TF32 on GPUs).
        public var precision: String?
        /// Han et al.'s fine-tuning: epochs, base rate, milestones.
        public var hanEpochs: Int?, hanLearningRate: Double?, hanMilestones: [Int]?

        /// An overrides record (all nil).
        public init() {}

        private enum CodingKeys: String, CodingKey, CaseIterable {
            case dataset, width, epochs, batchSize, trainLimit, testLimit, validationSize, learningRate, momentum, weightDecay
            case schedule, milestones, gamma, augment, hanEpochs, hanLearningRate, hanMilestones, precision
        }

        /// Decodes overrides; an unknown field is an error.
        public init(from decoder: any Decoder) throws {
            try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dataset = try c.decodeIfPresent(String.self, forKey: .dataset)
            width = try c.decodeIfPresent(Int.self, forKey: .width)
            epochs = try c.decodeIfPresent(Int.self, forKey: .epochs)
            batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize)
            trainLimit = try c.decodeIfPresent(Int.self, forKey: .trainLimit)
            testLimit = try c.decodeIfPresent(Int.self, forKey: .testLimit)
            validationSize = try c.decodeIfPresent(Int.self, forKey: .validationSize)
            learningRate = try c.decodeIfPresent(Double.self, forKey: .learningRate)
            momentum = try c.decodeIfPresent(Double.self, forKey: .momentum)
            weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay)
            schedule = try c.decodeIfPresent(String.self, forKey: .schedule)
            milestones = try c.decodeIfPresent([Int].self, forKey: .milestones)
            gamma = try c.decodeIfPresent(Double.self, forKey: .gamma)
            augment = try c.decodeIfPresent(Bool.self, forKey: .augment)
            precision = try c.decodeIfPresent(String.self, forKey: .precision)
            hanEpochs = try c.decodeIfPresent(Int.self, forKey: .hanEpochs)
            hanLearningRate = try c.decodeIfPresent(Double.self, forKey: .hanLearningRate)
            hanMilestones = try c.decodeIfPresent([Int].self, forKey: .hanMilestones)
        }

        /// The set fields as a JSON object.
        private var object: [String: Any] {
            (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(self)) as? [String: Any]) ?? [:]
        }

        /// Whether `field` is set.
        func isSet(_ field: String) -> Bool { object[field] != nil }

        /// These overrides with `fields` (JSON values by field name) on top; `context` opens any message.
        private func with(_ fields: [String: Any], context: String) throws(SweepError) -> Overrides {
            guard !fields.isEmpty else { return self }
            let object = self.object.merging(fields) { $1 }
            do {
                return try JSONDecoder().decode(Overrides.self, from: JSONSerialization.data(withJSONObject: object))
            } catch let DecodingError.dataCorrupted(context2) {
                throw .invalid("\(context): field \(context2.codingPath.map(\.stringValue).joined(separator: ".")) \(context2.debugDescription)")
            } catch let DecodingError.typeMismatch(_, context2) {
                throw .invalid("\(context): field \(context2.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
            } catch {
                throw .invalid("\(context): \(error)")
            }
        }

        /// These overrides with `settings` (`FIELD=VALUE`, VALUE as JSON or a bare word) on top.
        public func setting(_ settings: [String]) throws(SweepError) -> Overrides {
            var fields: [String: Any] = [:]
            for setting in settings {
                let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty else { throw .invalid("--set \(setting): write FIELD=VALUE, e.g. --set epochs=4") }
                fields[parts[0]] = (try? JSONSerialization.jsonObject(with: Data(parts[1].utf8), options: .fragmentsAllowed)) ?? parts[1]
            }
            return try with(fields, context: "--set")
        }

        /// These overrides with `other`'s set fields on top.
        func merged(with other: Overrides) throws(SweepError) -> Overrides { try with(other.object, context: "set") }

        /// These overrides with the preset-field axes of `point` on top.
        func setting(axes point: [String: AxisValue], context: String) throws(SweepError) -> Overrides {
            var fields: [String: Any] = [:]
            for (key, value) in point where SweepSchema.presetFields[key] != nil {
                switch value {
                case .number(let x): fields[key] = x == x.rounded() && abs(x) < 1e15 ? Int(x) as Any : x as Any
                case .text(let word): fields[key] = word
                case .flag(let flag): fields[key] = flag
                }
            }
            return try with(fields, context: context)
        }

        /// `preset` with these overrides applied, after checking every field; messages open with `context`.
        func applied(to base: Preset, context: String) throws(SweepError) -> Preset {
            var preset = base
            if let v = dataset {
                guard let dataset = TrainingConfig.Dataset(rawValue: v) else {
                    throw .invalid("\(context): dataset \(v.debugDescription) is not one of \(TrainingConfig.Dataset.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                preset.training.dataset = dataset
                if dataset != .synthetic { preset.training.synthetic = nil }
            }
            if let v = width { preset.training.width = v }
            if let v = epochs { preset.training.epochs = v }
            if let v = batchSize { preset.training.batchSize = v }
            if let v = trainLimit { preset.training.trainLimit = v }
            if let v = testLimit { preset.training.testLimit = v }
            if let v = validationSize { preset.training.validationSize = v }
            if let v = learningRate { preset.training.learningRate = v }
            if let v = momentum { preset.training.optimizer.momentum = Float(v) }
            if let v = weightDecay { preset.training.optimizer.weightDecay = Float(v) }
            if let v = augment { preset.training.augment = v }
            if let v = precision {
                guard let precision = Precision(rawValue: v) else {
                    throw .invalid("\(context): precision \(v.debugDescription) is not one of \(Precision.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                preset.training.precision = precision
            }
            switch schedule {
            case nil: break
            case "cosine": preset.training.schedule = .cosine
            case "constant": preset.training.schedule = .constant
            case "multistep": preset.training.schedule = .multiStep(milestones: milestones ?? [], gamma: gamma ?? 0.2)
            case let other?: throw .invalid("\(context): schedule \(other.debugDescription) is not one of cosine, constant, multistep")
            }
            if schedule != "multistep" && (milestones != nil || gamma != nil) {
                throw .invalid("\(context): milestones and gamma need schedule multistep")
            }
            if let v = hanEpochs { preset.hanEpochs = v }
            if let v = hanLearningRate { preset.hanLearningRate = v }
            if let v = hanMilestones { preset.hanMilestones = v }
            guard preset.hanEpochs >= 1, preset.hanLearningRate > 0 else { throw .invalid("\(context): hanEpochs must be ≥ 1 and hanLearningRate > 0") }
            do { try preset.training.validate() } catch { throw .invalid("\(context): \(error)") }
            return preset
        }
    }
}
