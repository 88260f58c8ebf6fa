import Dispatch
import Synchronization

/// Splits element-wise work (BatchNorm, im2col, augmentation) across the worker's threads.
///
/// Work is cut into fixed contiguous ranges that depend only on the count and the thread
/// setting, and no range is reduced across threads, so results are bit-identical from run
/// to run: resuming from a checkpoint relies on that.
public enum Parallel {
    private static let threadSetting = Atomic<Int>(1)
    @TaskLocal private static var scopedThreads: Int?

    /// The number of threads element-wise loops use (the BLAS has its own setting): the
    /// process-wide setting, or inside `withThreads` the count given there.
    public static var threads: Int {
        get { scopedThreads ?? threadSetting.load(ordering: .relaxed) }
        set { threadSetting.store(Swift.max(1, newValue), ordering: .relaxed) }
    }

    /// Runs `body` with `threads` set to `count` for the current task only. Tests compare
    /// thread counts this way: setting the process-wide count changed it under the tests that
    /// ran beside them, and a layer that sized per-thread scratch for one count could then be
    /// split for another and write past it.
    public static func withThreads<Result>(_ count: Int, _ body: () throws -> Result) rethrows -> Result {
        try $scopedThreads.withValue(Swift.max(1, count), operation: body)
    }

    /// Calls `body(range)` for disjoint ranges covering `0..<count`, concurrently when more
    /// than one thread is configured and there is enough work to share.
    public static func forEachRange(_ count: Int, minimumPerThread: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachPart(count, threads: threads, minimumPerThread: minimumPerThread) { _, range in body(range) }
    }

    /// `forEachRange` on at most `threads` threads (the caller's reading of `threads`, so that
    /// per-part scratch sized for it cannot be outrun) that also passes each range's part
    /// number, below `threads`: the index of the per-thread scratch space the part may use.
    public static func forEachPart(_ count: Int, threads: Int, minimumPerThread: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let parts = Swift.min(threads, Swift.max(1, count / Swift.max(1, minimumPerThread)))
        if parts <= 1 {
            body(0, 0..<count)
            return
        }
        // The ranges are disjoint and the call returns only when all are done, so sharing the
        // caller's (non-Sendable) closure and the memory it captures across threads is safe.
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let start = count * part / parts
                let end = count * (part + 1) / parts
                if start < end { shared.value(part, start..<end) }
            }
        }
    }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
