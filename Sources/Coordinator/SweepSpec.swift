import Foundation
import Model
import TaskRuntime

/// A sweep: a preset, seeds, and experiments, each one method with fixed options and a grid of
/// axes over its options and the preset's fields; an optional sweep-wide grid over preset fields
/// multiplies every experiment. Stored as JSON (`docs/sweeps.md`) under `sweeps/` or built in.
public struct SweepSpec: Codable, Hashable, Sendable {
    /// The sweep's name.
    public var name: String
    /// The preset's name (`paper`, `quick`, `smoke`).
    public var preset: String
    /// Run seeds.
    public var seeds: [UInt64]
    /// What the sweep asks, in words (the file's `description`); it changes nothing that runs.
    public var about: String?
    /// Preset fields fixed for the whole sweep (the file's `set`; `--set FIELD=VALUE` adds to it).
    public var overrides: Overrides
    /// Sweep-wide axes over preset fields: every experiment, the dense runs included, runs at
    /// each point of their product.
    public var grid: [String: [AxisValue]]
    /// The experiments, in the file's order.
    public var experiments: [Experiment]

    /// One method with fixed options, preset fields it sets, and a grid of axes over both.
    public struct Experiment: Codable, Hashable, Sendable {
        /// The method (`SweepSchema.methods`).
        public var method: String
        /// Fixed options of the method (keys of the experiment object besides method, grid and set).
        public var options: [String: AxisValue]
        /// Axes: option or preset field → the values it takes.
        public var grid: [String: [AxisValue]]
        /// Preset fields fixed for this experiment only.
        public var overrides: Overrides

        /// An experiment of `method`.
        public init(method: String, options: [String: AxisValue] = [:], grid: [String: [AxisValue]] = [:], overrides: Overrides = Overrides()) {
            self.method = method
            self.options = options
            self.grid = grid
            self.overrides = overrides
        }

        private struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ string: String) { stringValue = string }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        /// Decodes `{"method": …, "grid": {…}, "set": {…}, OPTION: VALUE…}`; options are checked by `SweepSpec.validate`.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            method = try c.decode(String.self, forKey: Key("method"))
            grid = try c.decodeIfPresent([String: [AxisValue]].self, forKey: Key("grid")) ?? [:]
            overrides = try c.decodeIfPresent(Overrides.self, forKey: Key("set")) ?? Overrides()
            var options: [String: AxisValue] = [:]
            for key in c.allKeys where !["method", "grid", "set"].contains(key.stringValue) {
                options[key.stringValue] = try c.decode(AxisValue.self, forKey: key)
            }
            self.options = options
        }

        /// Encodes the same shape, leaving out an empty grid or set.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: Key.self)
            try c.encode(method, forKey: Key("method"))
            if !grid.isEmpty { try c.encode(grid, forKey: Key("grid")) }
            if overrides != Overrides() { try c.encode(overrides, forKey: Key("set")) }
            for (key, value) in options { try c.encode(value, forKey: Key(key)) }
        }
    }

    /// A sweep of `experiments`.
    public init(name: String, preset: String, seeds: [UInt64], about: String? = nil, overrides: Overrides = Overrides(),
                grid: [String: [AxisValue]] = [:], experiments: [Experiment]) {
        self.name = name
        self.about = about
        self.preset = preset
        self.seeds = seeds
        self.overrides = overrides
        self.grid = grid
        self.experiments = experiments
    }

    /// A sweep in the terms of the first format (fixed fields per method), converted to
    /// experiments that plan exactly the tasks that format planned.
    public init(name: String, preset: String, seeds: [UInt64], dense: Bool = false, lotteryRounds: Int = 0, hanIterations: Int = 0,
                synflowIterations: [Int] = [], synflowDensities: [Double] = [], baselines: [String] = [],
                baselineDensities: [Double] = [], overrides: Overrides = Overrides()) {
        func numbers<T: BinaryInteger>(_ values: [T]) -> [AxisValue] { values.map { .number(Double($0)) } }
        var experiments: [Experiment] = []
        if dense { experiments.append(Experiment(method: "dense")) }
        if lotteryRounds != 0 { experiments.append(Experiment(method: "lottery-ticket", options: ["rounds": .number(Double(lotteryRounds))])) }
        if hanIterations != 0 { experiments.append(Experiment(method: "han", options: ["iterations": .number(Double(hanIterations))])) }
        if !synflowIterations.isEmpty || !synflowDensities.isEmpty {
            experiments.append(Experiment(method: "synflow", grid: ["density": synflowDensities.map(AxisValue.number), "iterations": numbers(synflowIterations)]))
        }
        for baseline in baselines where !baselineDensities.isEmpty {
            experiments.append(Experiment(method: baseline, grid: ["density": baselineDensities.map(AxisValue.number)]))
        }
        self.init(name: name, preset: preset, seeds: seeds, overrides: overrides, experiments: experiments)
    }

    private enum CodingKeys: String, CodingKey, CaseIterable {
        case name, preset, seeds, set, grid, experiments
        case about = "description"
    }

    private enum LegacyKeys: String, CodingKey, CaseIterable {
        case name, preset, seeds, dense, lotteryRounds, hanIterations, synflowIterations, synflowDensities, baselines, baselineDensities, overrides
    }

    /// Decodes a sweep file. A file of the first format (`lotteryRounds`, `synflowIterations`, …
    /// and no `experiments`) loads as the experiments it stands for; unknown fields are an error.
    public init(from decoder: any Decoder) throws {
        let keys = Set(try decoder.container(keyedBy: LegacyKeys.self).allKeys.map(\.stringValue))
        let legacy = Set(LegacyKeys.allCases.map(\.stringValue)).subtracting(["name", "preset", "seeds"])
        let probe = try decoder.container(keyedBy: CodingKeys.self)
        if !probe.contains(.experiments), !keys.isDisjoint(with: legacy) {
            try StrictKeys.refuseUnknown(LegacyKeys.self, in: decoder)
            let c = try decoder.container(keyedBy: LegacyKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), preset: try c.decode(String.self, forKey: .preset),
                      seeds: try c.decode([UInt64].self, forKey: .seeds),
                      dense: try c.decodeIfPresent(Bool.self, forKey: .dense) ?? false,
                      lotteryRounds: try c.decodeIfPresent(Int.self, forKey: .lotteryRounds) ?? 0,
                      hanIterations: try c.decodeIfPresent(Int.self, forKey: .hanIterations) ?? 0,
                      synflowIterations: try c.decodeIfPresent([Int].self, forKey: .synflowIterations) ?? [],
                      synflowDensities: try c.decodeIfPresent([Double].self, forKey: .synflowDensities) ?? [],
                      baselines: try c.decodeIfPresent([String].self, forKey: .baselines) ?? [],
                      baselineDensities: try c.decodeIfPresent([Double].self, forKey: .baselineDensities) ?? [],
                      overrides: try c.decodeIfPresent(Overrides.self, forKey: .overrides) ?? Overrides())
            return
        }
        if let old = keys.intersection(legacy).sorted().first {
            throw DecodingError.dataCorrupted(.init(codingPath: [LegacyKeys(rawValue: old) ?? LegacyKeys.name],
                                                    debugDescription: "belongs to the first sweep format; with experiments, write it as an experiment (docs/sweeps.md, \"The first format\")"))
        }
        try StrictKeys.refuseUnknown(CodingKeys.self, in: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), preset: try c.decode(String.self, forKey: .preset),
                  seeds: try c.decode([UInt64].self, forKey: .seeds), about: try c.decodeIfPresent(String.self, forKey: .about),
                  overrides: try c.decodeIfPresent(Overrides.self, forKey: .set) ?? Overrides(),
                  grid: try c.decodeIfPresent([String: [AxisValue]].self, forKey: .grid) ?? [:],
                  experiments: try c.decodeIfPresent([Experiment].self, forKey: .experiments) ?? [])
    }

    /// Encodes the current format (an empty `set` or `grid` left out).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(preset, forKey: .preset)
        try c.encode(seeds, forKey: .seeds)
        try c.encodeIfPresent(about, forKey: .about)
        if overrides != Overrides() { try c.encode(overrides, forKey: .set) }
        if !grid.isEmpty { try c.encode(grid, forKey: .grid) }
        try c.encode(experiments, forKey: .experiments)
    }

    /// The experiments and axes in one line, for the report: "learningRate ∈ {0.1, 0.05} × dense; synflow density=0.2 iterations ∈ {1, 10}".
    public var outline: String {
        func axes(_ grid: [String: [AxisValue]]) -> [String] {
            grid.sorted { $0.key < $1.key }.map { "\($0.key) ∈ {\($0.value.map(\.description).joined(separator: ", "))}" }
        }
        let each = experiments.map { experiment in
            ([experiment.method] + experiment.options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } + axes(experiment.grid))
                .joined(separator: " ")
        }
        return (axes(grid) + [each.joined(separator: "; ")]).joined(separator: " × ")
    }

    /// The built-in sweeps by name; `sweeps/NAME.json` holds each as a file (a test keeps them equal).
    public static let builtIn: [String: SweepSpec] = [
        "synflow-iters": SweepSpec(name: "synflow-iters", preset: "quick", seeds: [42, 43, 44], experiments: [
            Experiment(method: "dense"),
            Experiment(method: "synflow", grid: ["iterations": [1, 10, 20, 100].map(AxisValue.number), "density": [0.1, 0.05, 0.01].map(AxisValue.number)]),
        ]),
        "seeds": SweepSpec(name: "seeds", preset: "paper", seeds: [42, 43, 44], experiments: [
            Experiment(method: "dense"),
            Experiment(method: "lottery-ticket", options: ["rounds": .number(9)]),
            Experiment(method: "han", options: ["iterations": .number(7)]),
        ]),
        "baselines": SweepSpec(name: "baselines", preset: "quick", seeds: [42, 43, 44], experiments: [Experiment(method: "dense")] +
            ["random", "magnitude-at-init", "snip", "synflow"].map { Experiment(method: $0, grid: ["density": [0.1, 0.05, 0.01].map(AxisValue.number)]) }),
    ]

    /// The sweep `name` names: a file, else `sweeps/NAME.json` in the working directory, else a built-in.
    public static func named(_ name: String) throws(SweepError) -> SweepSpec {
        if FileManager.default.fileExists(atPath: name) { return try load(URL(fileURLWithPath: name)) }
        let shipped = "sweeps/\(name).json"
        if !name.contains("/"), FileManager.default.fileExists(atPath: shipped) { return try load(URL(fileURLWithPath: shipped)) }
        if let builtIn = builtIn[name] { return builtIn }
        throw .invalid("sweep \(name.debugDescription) is neither a file, nor sweeps/\(name).json here, nor a built-in (\(builtIn.keys.sorted().joined(separator: ", ")))")
    }

    /// Reads a sweep file; every problem names the file and the field.
    public static func load(_ url: URL) throws(SweepError) -> SweepSpec {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .invalid("cannot read sweep file \(url.path): \(error.localizedDescription)") }
        let spec: SweepSpec
        do { spec = try JSONDecoder().decode(SweepSpec.self, from: data) } catch {
            throw .invalid(StrictKeys.explain(error, file: url, kind: "sweep file"))
        }
        do { try spec.validate() } catch { throw .invalid("\(url.path): \(error)") }
        return spec
    }

    /// The preset with the sweep-wide `set` applied (each experiment point adds its own fields), after checking the sweep.
    public func resolvedPreset() throws(SweepError) -> Preset {
        try validate()
        return try base()
    }

    /// The preset with the sweep-wide `set` applied.
    func base() throws(SweepError) -> Preset {
        guard let preset = Preset.builtIn[preset] else {
            throw .invalid("preset \(self.preset.debugDescription) is unknown; use one of \(Preset.builtIn.keys.sorted().joined(separator: ", "))")
        }
        return try overrides.applied(to: preset, context: "set")
    }

    /// Checks every key and value of the sweep against `SweepSchema`; the message names the
    /// experiment, the key, and the valid choices. Recipes and duplicates are checked when planning.
    public func validate() throws(SweepError) {
        guard !seeds.isEmpty else { throw .invalid("seeds is empty: a sweep needs at least one seed") }
        guard Set(seeds).count == seeds.count else { throw .invalid("seeds lists a seed twice: \(seeds.map(String.init).joined(separator: ", "))") }
        guard !experiments.isEmpty else {
            throw .invalid("experiments is empty: add at least one, e.g. {\"method\": \"dense\"} (methods: \(SweepSchema.methods.keys.sorted().joined(separator: ", ")))")
        }
        let fields = SweepSchema.presetFields
        let fieldList = fields.keys.sorted().joined(separator: ", ")
        func checkAxis(_ context: String, _ key: String, _ values: [AxisValue], _ kind: SweepSchema.Kind) throws(SweepError) {
            guard kind != .list else { throw .invalid("\(context): grid.\(key) cannot be an axis (a list-valued field); fix it with \"set\"") }
            guard !values.isEmpty else { throw .invalid("\(context): grid.\(key) has no values; give at least one") }
            for value in values where !kind.accepts(value) {
                throw .invalid("\(context): \(key) \(SweepSchema.written(value)) must be \(kind.requirement)")
            }
            if let twice = values.first(where: { value in values.filter { $0 == value }.count > 1 }) {
                throw .invalid("\(context): grid.\(key) lists \(SweepSchema.written(twice)) twice")
            }
        }
        for (key, values) in grid.sorted(by: { $0.key < $1.key }) {
            guard let kind = fields[key] else {
                throw .invalid("grid: \(key.debugDescription) is not a preset field (\(fieldList)); vary a method's options in its experiment's grid")
            }
            guard !overrides.isSet(key) else { throw .invalid("grid: \(key) is both set and a sweep-wide axis; keep one") }
            try checkAxis("grid", key, values, kind)
        }
        _ = try base()
        for (index, experiment) in experiments.enumerated() {
            guard let method = SweepSchema.methods[experiment.method] else {
                throw .invalid("experiments[\(index)]: method \(experiment.method.debugDescription) is unknown; use one of \(SweepSchema.methods.keys.sorted().joined(separator: ", "))")
            }
            let context = "experiments[\(index)] (\(experiment.method))"
            let optionList = method.options.isEmpty ? "it has no options" : "its options: \(method.options.keys.sorted().joined(separator: ", "))"
            for (key, value) in experiment.options.sorted(by: { $0.key < $1.key }) {
                guard let kind = method.options[key] else {
                    let hint = fields[key] != nil ? "; a preset field goes in \"set\" or \"grid\"" : ""
                    throw .invalid("\(context): \(key.debugDescription) is not an option of \(experiment.method) (\(optionList))\(hint)")
                }
                guard kind.accepts(value) else { throw .invalid("\(context): \(key) \(SweepSchema.written(value)) must be \(kind.requirement)") }
                if experiment.grid[key] != nil { throw .invalid("\(context): \(key) is both fixed and in the grid; keep one") }
            }
            for (key, values) in experiment.grid.sorted(by: { $0.key < $1.key }) {
                guard let kind = method.options[key] ?? fields[key] else {
                    throw .invalid("\(context): grid.\(key) is neither an option of \(experiment.method) (\(optionList)) nor a preset field (\(fieldList))")
                }
                if method.options[key] == nil {
                    if grid[key] != nil { throw .invalid("\(context): grid.\(key) is also a sweep-wide axis; vary it in one place") }
                    if experiment.overrides.isSet(key) { throw .invalid("\(context): \(key) is both set and in the grid; keep one") }
                }
                try checkAxis(context, key, values, kind)
            }
            for key in SweepSchema.presetFields.keys.sorted() where experiment.overrides.isSet(key) && grid[key] != nil {
                throw .invalid("\(context): set.\(key) would fix the sweep-wide axis \(key); vary it in one place")
            }
            for key in method.required where experiment.options[key] == nil && experiment.grid[key] == nil {
                throw .invalid("\(context): \(key) is missing; give it (\(method.options[key]?.requirement ?? "")) or vary it in the grid")
            }
        }
    }
}
