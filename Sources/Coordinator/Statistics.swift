import Foundation

/// Summary statistics across seeds: mean, sample standard deviation and a Student-t
/// confidence interval, the figures `aggregate.json` reports per method and density.
public struct SeedStatistics: Codable, Equatable, Sendable {
    /// How many values (seeds) there are.
    public var n: Int
    /// Their mean.
    public var mean: Double
    /// The sample standard deviation (n − 1); nil for fewer than two values.
    public var std: Double?
    /// Half the width of the 95% interval, t(0.975, n − 1) · std / √n; nil for fewer than two.
    public var ci95: Double?

    /// The statistics of `values` (at least one).
    public init(_ values: [Double]) {
        precondition(!values.isEmpty, "SeedStatistics needs at least one value")
        n = values.count
        mean = values.reduce(0, +) / Double(n)
        guard n >= 2 else { return }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        std = variance.squareRoot()
        ci95 = StudentT.quantile(0.975, degreesOfFreedom: Double(n - 1)) * variance.squareRoot() / Double(n).squareRoot()
    }
}

/// Student's t distribution, computed (not tabulated) from the regularised incomplete beta.
public enum StudentT {
    /// P(T ≤ t) for ν degrees of freedom.
    public static func cdf(_ t: Double, degreesOfFreedom nu: Double) -> Double {
        let x = nu / (nu + t * t)
        let tail = 0.5 * incompleteBeta(x, a: nu / 2, b: 0.5)
        return t >= 0 ? 1 - tail : tail
    }

    /// The p-quantile (0 < p < 1) for ν degrees of freedom, by bisection on the CDF.
    public static func quantile(_ p: Double, degreesOfFreedom nu: Double) -> Double {
        var low = -1e4, high = 1e4
        for _ in 0..<200 {
            let mid = (low + high) / 2
            if cdf(mid, degreesOfFreedom: nu) < p { low = mid } else { high = mid }
        }
        return (low + high) / 2
    }

    /// I_x(a, b) by Lentz's continued fraction (Numerical Recipes' betacf).
    static func incompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logGammas: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logGammas + logPowers)
        if x > (a + 1) / (a + b + 2) { return 1 - incompleteBeta(1 - x, a: b, b: a) }
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var f = d
        for m in 1...300 {
            let m = Double(m)
            var numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
            d = 1 + numerator * d; if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            f *= d * c
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
            d = 1 + numerator * d; if abs(d) < tiny { d = tiny }
            c = 1 + numerator / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            f *= delta
            if abs(delta - 1) < 1e-15 { break }
        }
        return front * f / a
    }
}
