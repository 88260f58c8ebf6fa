/// What a worker reports of a step's time with its result.
public struct StepTimes: Codable, Sendable {
    /// Seconds the step computed (without fetching inputs or uploading outputs).
    public var stepSeconds: Double
    /// A record.
    public init(stepSeconds: Double) { self.stepSeconds = stepSeconds }
}
