import Foundation
import Testing
@testable import Coordinator
@testable import Model
import TaskRuntime

/// The sweep file format: what loads, and every refusal with its exact message.
@Suite struct SweepFormatTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The sweep of `json`, decoded, or the message of its refusal (decoding, validation or planning).
    enum Outcome {
        case success(SweepPlan)
        case failure(String)
    }

    static func outcome(_ json: String) -> Outcome {
        do {
            let spec = try JSONDecoder().decode(SweepSpec.self, from: Data(json.utf8))
            return .success(try SweepPlan(spec))
        } catch let error as SweepError {
            return .failure(error.description)
        } catch {
            return .failure(StrictKeys.explain(error, file: URL(fileURLWithPath: "/s.json"), kind: "sweep file"))
        }
    }

    static func refusal(_ json: String) -> String? {
        if case .failure(let message) = outcome(json) { return message }
        return nil
    }

    static func sweep(_ experiments: String, grid: String = "", set: String = "") -> String {
        #"{"name":"t","preset":"smoke","seeds":[1]\#(grid.isEmpty ? "" : #","grid":"# + grid)\#(set.isEmpty ? "" : #","set":"# + set),"experiments":[\#(experiments)]}"#
    }

    @Test func refusalsNameTheExperimentTheKeyAndTheChoices() {
        let methods = "dense, han, lottery-ticket, magnitude-at-init, random, snip, synflow"
        let fields = SweepSchema.presetFields.keys.sorted().joined(separator: ", ")
        let cases: [(String, String)] = [
            (Self.sweep(#"{"method":"dense"},{"method":"synflw","density":0.1}"#),
             "experiments[1]: method \"synflw\" is unknown; use one of \(methods)"),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":2,"rewind":1}"#),
             "experiments[0] (lottery-ticket): \"rewind\" is not an option of lottery-ticket (its options: keepClassifier, rate, rewindEpoch, rounds, scope)"),
            (Self.sweep(#"{"method":"synflow","density":0.1,"epochs":3}"#),
             "experiments[0] (synflow): \"epochs\" is not an option of synflow (its options: density, iterations, schedule, scope); a preset field goes in \"set\" or \"grid\""),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":2,"grid":{"rewind":[1]}}"#),
             "experiments[0] (lottery-ticket): grid.rewind is neither an option of lottery-ticket (its options: keepClassifier, rate, rewindEpoch, rounds, scope) nor a preset field (\(fields))"),
            (Self.sweep(#"{"method":"synflow","grid":{"density":[5]}}"#),
             "experiments[0] (synflow): density 5 must be a fraction kept in (0, 1], not a percentage (5 % is 0.05)"),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":"five"}"#),
             "experiments[0] (lottery-ticket): rounds \"five\" must be a whole number in 1...100"),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":2,"grid":{"scope":["local"]}}"#),
             "experiments[0] (lottery-ticket): scope \"local\" must be one of global, layerwise"),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":2,"keepClassifier":1}"#),
             "experiments[0] (lottery-ticket): keepClassifier 1 must be true or false"),
            (Self.sweep(#"{"method":"synflow","density":0.1,"grid":{"iterations":[]}}"#),
             "experiments[0] (synflow): grid.iterations has no values; give at least one"),
            (Self.sweep(#"{"method":"synflow","grid":{"iterations":[10]}}"#),
             "experiments[0] (synflow): density is missing; give it (a fraction kept in (0, 1], not a percentage (5 % is 0.05)) or vary it in the grid"),
            (Self.sweep(#"{"method":"synflow","density":0.1,"grid":{"density":[0.2]}}"#),
             "experiments[0] (synflow): density is both fixed and in the grid; keep one"),
            (Self.sweep(#"{"method":"synflow","density":0.1,"grid":{"iterations":[10,10]}}"#),
             "experiments[0] (synflow): grid.iterations lists 10 twice"),
            (Self.sweep(#"{"method":"dense"}"#, grid: #"{"lr":[0.1]}"#),
             "grid: \"lr\" is not a preset field (\(fields)); vary a method's options in its experiment's grid"),
            (Self.sweep(#"{"method":"dense"}"#, grid: #"{"learningRate":[0.1]}"#, set: #"{"learningRate":0.2}"#),
             "grid: learningRate is both set and a sweep-wide axis; keep one"),
            (Self.sweep(#"{"method":"dense","grid":{"learningRate":[0.2]}}"#, grid: #"{"learningRate":[0.1]}"#),
             "experiments[0] (dense): grid.learningRate is also a sweep-wide axis; vary it in one place"),
            (Self.sweep(#"{"method":"dense","grid":{"milestones":[60,120]}}"#),
             "experiments[0] (dense): grid.milestones cannot be an axis (a list-valued field); fix it with \"set\""),
            (Self.sweep(#"{"method":"lottery-ticket","rounds":1,"grid":{"rewindEpoch":[0,2]}}"#),
             "experiments[0] (lottery-ticket) at rewindEpoch=2: rewindEpoch 2 must be below the recipe's epochs (2), or the rounds have no epoch left to train"),
            (Self.sweep(#"{"method":"synflow","density":0.1},{"method":"synflow","grid":{"density":[0.1,0.2]}}"#),
             "experiments[1] (synflow) at density=0.1 and experiments[0] (synflow) expand to the same tasks (train synflow T=100 seed 1 d=0.1); remove one or change its options"),
            (Self.sweep(#"{"method":"han","iterations":1,"grid":{"quality":[0.5,1]}}"#),
             "experiments[0] (han) at quality=1 plans the same tasks as experiments[0] (han) at quality=0.5 (train han q=0.5 seed 1): an option that changes nothing there is not an axis"),
            (#"{"name":"t","preset":"smoke","seeds":[1],"experiments":[]}"#,
             "experiments is empty: add at least one, e.g. {\"method\": \"dense\"} (methods: \(methods))"),
            (#"{"name":"t","preset":"smoke","seeds":[1],"lotteryRounds":2,"experiments":[{"method":"dense"}]}"#,
             "/s.json: field lotteryRounds belongs to the first sweep format; with experiments, write it as an experiment (docs/sweeps.md, \"The first format\")"),
            (#"{"name":"t","preset":"smoke","seeds":[1],"experiment":[]}"#,
             "/s.json: field experiment is not a known field (known: description, experiments, grid, name, preset, seeds, set)"),
        ]
        for (json, message) in cases {
            #expect(Self.refusal(json) == message, "\(json)")
        }
        let recipe = Self.refusal(Self.sweep(#"{"method":"dense","set":{"epochs":0}}"#)) ?? ""
        #expect(recipe.hasPrefix("experiments[0] (dense): ") && recipe.contains("epochs must be ≥ 1, got 0"), "\(recipe)")
    }

    /// Two values of each option of each method, and of each preset field that can vary, plan
    /// distinct results; a value out of range is refused naming the option and what it takes.
    @Test func everyOptionOfEveryMethodIsAnAxis() throws {
        func values(_ kind: SweepSchema.Kind) -> (valid: [String], invalid: String) {
            switch kind {
            case .whole(let min, _): (["\(min)", "\(min + 1)"], "0.5")
            case .positive: (["0.5", "1"], "0")
            case .nonNegative: (["0", "0.5"], "-1")
            case .fraction: (["0.5", "0.2"], "5")
            case .rate: (["0.2", "0.5"], "1")
            case .word(let words): (words.map { "\"\($0)\"" }, "\"nope\"")
            case .flag: (["false", "true"], "1")
            case .list: ([], "")
            }
        }
        let required = ["lottery-ticket": #""rounds":2"#, "han": #""iterations":2"#, "dense": ""]
        var covered = 0
        for (method, schema) in SweepSchema.methods.sorted(by: { $0.key < $1.key }) {
            for (option, kind) in schema.options.sorted(by: { $0.key < $1.key }) {
                let (valid, invalid) = values(kind)
                var fixed = required[method] ?? #""density":0.5"#
                if option == "rounds" || option == "iterations" && method == "han" || option == "density" { fixed = "" }
                let head = #"{"method":"\#(method)""# + (fixed.isEmpty ? "" : "," + fixed)
                let good = Self.sweep(head + #","grid":{"\#(option)":[\#(valid.joined(separator: ","))]}}"#)
                switch Self.outcome(good) {
                case .success(let plan):
                    let results = plan.tasks.filter { $0.labels.reported && $0.labels.method == method }
                    // The number of rounds and the density are fields of their own, not axes of the tasks.
                    let distinct = switch option {
                    case _ where option == "rounds" || option == "iterations" && method == "han": Set(results.map { AxisValue.number(Double($0.labels.round)) }).count
                    case "density": Set(results.compactMap { $0.labels.targetDensity.map(AxisValue.number) }).count
                    default: Set(results.compactMap { $0.labels.axes[option] }).count
                    }
                    #expect(distinct == valid.count, "\(method) \(option)")
                case .failure(let message):
                    Issue.record("\(method) \(option) \(valid): \(message)")
                }
                let bad = Self.sweep(head + #","grid":{"\#(option)":[\#(invalid)]}}"#)
                #expect(Self.refusal(bad) == "experiments[0] (\(method)): \(option) \(invalid.replacingOccurrences(of: "\"", with: "\"")) must be \(kind.requirement)", "\(bad)")
                covered += 1
            }
        }
        #expect(covered == SweepSchema.methods.values.reduce(0) { $0 + $1.options.count })
        let presetPairs: [String: String] = [
            "dataset": #"["synthetic","fashion-mnist"]"#, "width": "[4,8]", "epochs": "[1,2]", "batchSize": "[16,32]", "trainLimit": "[100,200]",
            "testLimit": "[32,64]", "validationSize": "[0,64]", "learningRate": "[0.05,0.1]", "momentum": "[0,0.9]", "weightDecay": "[0,0.0005]",
            "schedule": #"["cosine","constant"]"#, "gamma": "[0.1,0.2]", "augment": "[true,false]", "precision": #"["fp32","tf32"]"#,
            "hanEpochs": "[1,2]", "hanLearningRate": "[0.01,0.02]",
        ]
        for (field, kind) in SweepSchema.presetFields.sorted(by: { $0.key < $1.key }) where kind != .list {
            guard let pair = presetPairs[field] else { Issue.record("no values for \(field)"); continue }
            let set = field == "gamma" ? #"{"schedule":"multistep","milestones":[1]}"# : ""
            let json = Self.sweep(#"{"method":"han","iterations":2}"#, grid: #"{"\#(field)":\#(pair)}"#, set: set)
            guard case .success(let plan) = Self.outcome(json) else { Issue.record("\(field): \(Self.refusal(json) ?? "")"); continue }
            let han = Set(plan.tasks.filter { $0.labels.method == "han" && $0.labels.reported }.map { $0.id })
            #expect(han.count == 4, "\(field): two recipes of two Han fine-tunes")
        }
    }

    @Test func shippedSweepsAreTheBuiltInsAndTheExamplesLoad() throws {
        for (name, builtIn) in SweepSpec.builtIn {
            var file = try SweepSpec.load(Self.root.appendingPathComponent("sweeps/\(name).json"))
            #expect(file.about != nil)
            file.about = nil
            #expect(file == builtIn, "sweeps/\(name).json")
        }
        for name in ["late-rewinding", "synflow-schedule", "lr-density", "smoke", "lottery-quick"] {
            _ = try SweepPlan(try SweepSpec.load(Self.root.appendingPathComponent("sweeps/\(name).json")))
        }
    }

    @Test func theFirstFormatLoadsAsItsExperiments() throws {
        let old = #"{"name":"o","preset":"smoke","seeds":[1],"dense":true,"lotteryRounds":2,"hanIterations":2,"synflowIterations":[10],"synflowDensities":[0.1],"baselines":["random"],"baselineDensities":[0.2],"overrides":{"epochs":3}}"#
        let spec = try JSONDecoder().decode(SweepSpec.self, from: Data(old.utf8))
        #expect(spec.experiments.map(\.method) == ["dense", "lottery-ticket", "han", "synflow", "random"])
        #expect(spec.overrides.epochs == 3)
        let converted = try JSONDecoder().decode(SweepSpec.self, from: JSONEncoder().encode(spec))
        #expect(converted == spec)
        #expect(Set(try SweepPlan(converted).tasks.map(\.id)) == Set(try SweepPlan(spec).tasks.map(\.id)))
    }
}
