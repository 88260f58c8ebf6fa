import Foundation

/// One axis of a plot: its scale, the data range it spans, its ticks and its title.
public struct PlotAxis: Sendable {
    /// How values map to positions.
    public enum Scale: Sendable { case linear, log }

    /// A tick: where it sits, its label, and an optional second label on the opposite side
    /// (the compression ratio above a density).
    public struct Tick: Sendable, Equatable {
        public var value: Double, label: String, secondary: String?
        public init(_ value: Double, _ label: String, secondary: String? = nil) {
            self.value = value
            self.label = label
            self.secondary = secondary
        }
    }

    public var title: String
    public var scale: Scale
    /// The data range the axis spans (positive for a log axis).
    public var range: ClosedRange<Double>
    /// Whether values grow to the left (density falling to the right, as pruning papers plot it).
    public var reversed: Bool
    public var ticks: [Tick]
    /// The title of the secondary tick labels, when there are any.
    public var secondaryTitle: String?

    public init(title: String, scale: Scale, range: ClosedRange<Double>, reversed: Bool = false, ticks: [Tick], secondaryTitle: String? = nil) {
        self.title = title
        self.scale = scale
        self.range = range
        self.reversed = reversed
        self.ticks = ticks
        self.secondaryTitle = secondaryTitle
    }

    /// Where `value` sits along the axis, 0 at its start and 1 at its end.
    public func fraction(_ value: Double) -> Double {
        let transform: (Double) -> Double = scale == .log ? { log10($0) } : { $0 }
        let low = transform(range.lowerBound), high = transform(range.upperBound)
        let position = high > low ? (transform(value) - low) / (high - low) : 0.5
        return reversed ? 1 - position : position
    }

    /// Whole decades around `low...high` (both > 0); a single value still spans one decade.
    /// A value within 2% of a decade counts as on it, so a realised density of 0.10003 (a
    /// target of 0.1 missed by a few weights) does not stretch the axis to 100%; the range
    /// still reaches the values themselves.
    public static func logRange(_ low: Double, _ high: Double) -> ClosedRange<Double> {
        let bottom = (log10(low) + 0.01).rounded(.down), top = (log10(high) - 0.01).rounded(.up)
        return Swift.min(low, pow(10, bottom))...Swift.max(high, pow(10, Swift.max(top, bottom + 1)))
    }

    /// Ticks of a log axis over `range`: every decade, and 2 and 5 of each decade when the
    /// axis spans at most two decades (else the ticks of one decade would be its only ones).
    public static func logTicks(_ range: ClosedRange<Double>) -> [Double] {
        let bottom = Int((log10(range.lowerBound) + 0.01).rounded(.down)), top = Int((log10(range.upperBound) - 0.01).rounded(.up))
        let multiples: [Double] = top - bottom <= 2 ? [1, 2, 5] : [1]
        let lowest: Double = range.lowerBound * (1 - 1e-9), highest: Double = range.upperBound * (1 + 1e-9)
        let candidates: [Double] = (bottom...top).flatMap { decade in multiples.map { $0 * pow(10, Double(decade)) } }
        return candidates.filter { $0 >= lowest && $0 <= highest }
    }

    /// About `count` ticks at a round step (1, 2 or 5 × 10^k) covering `range`, and the range
    /// widened to the ticks at its ends.
    public static func linearTicks(_ range: ClosedRange<Double>, count: Int = 6) -> (range: ClosedRange<Double>, ticks: [Double]) {
        let span = Swift.max(range.upperBound - range.lowerBound, 1e-9)
        let raw = span / Double(Swift.max(count - 1, 1))
        let magnitude = pow(10, log10(raw).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = (range.lowerBound / step - 1e-9).rounded(.down), last = (range.upperBound / step + 1e-9).rounded(.up)
        let ticks = stride(from: first, through: last, by: 1).map { $0 * step }
        return (first * step...last * step, ticks)
    }
}
