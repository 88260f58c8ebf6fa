import Dispatch
import Synchronization
import Testing
@testable import Model

/// The element-wise thread setting and the split of work into parts.
struct ParallelTests {
    /// `withThreads` sets the count for the calling task only: a thread outside it, as a test
    /// running beside it would be, still reads the process-wide setting.
    @Test func withThreadsSetsTheCountForThisTaskOnly() {
        let processWide = Parallel.threads
        final class Seen: @unchecked Sendable { var threads = 0 }  // written before the semaphore's signal, read after its wait
        let seenOutside = Seen()
        Parallel.withThreads(processWide + 3) {
            #expect(Parallel.threads == processWide + 3)
            // `async`, not `sync`: a synchronous dispatch runs the block on this very thread.
            let done = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                seenOutside.threads = Parallel.threads
                done.signal()
            }
            done.wait()
        }
        #expect(seenOutside.threads == processWide)
        #expect(Parallel.threads == processWide)
    }

    /// Parts never outnumber the threads the caller passed (the count its per-part scratch was
    /// sized for), even where `threads` reads more, and together they cover the count once.
    @Test func partsStayBelowTheThreadsGiven() {
        let covered = Mutex([Int](repeating: 0, count: 100))
        let highestPart = Atomic<Int>(-1)
        Parallel.withThreads(8) {
            Parallel.forEachPart(100, threads: 2) { part, range in
                _ = highestPart.max(part, ordering: .relaxed)
                covered.withLock { counts in for i in range { counts[i] += 1 } }
            }
        }
        #expect(highestPart.load(ordering: .relaxed) == 1)
        #expect(covered.withLock { $0.allSatisfy { $0 == 1 } })
    }
}
