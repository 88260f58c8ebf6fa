import Testing
@testable import Coordinator

@Suite struct StatisticsTests {
    @Test func studentQuantilesMatchTables() {
        let known: [(Double, Double)] = [(1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (9, 2.262157163), (30, 2.042272456), (1000, 1.962339081)]
        for (nu, t) in known {
            #expect(abs(StudentT.quantile(0.975, degreesOfFreedom: nu) - t) < 1e-6, "ν = \(nu)")
        }
    }

    @Test func seedStatistics() {
        let three = SeedStatistics([0.9, 0.92, 0.94])
        #expect(three.n == 3 && abs(three.mean - 0.92) < 1e-12)
        #expect(abs(three.std! - 0.02) < 1e-12)
        #expect(abs(three.ci95! - 4.302652730 * 0.02 / 3.0.squareRoot()) < 1e-8)
        let one = SeedStatistics([0.5])
        #expect(one.std == nil && one.ci95 == nil && one.mean == 0.5)
    }
}
