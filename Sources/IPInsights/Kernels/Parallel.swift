import Dispatch

/// Fork-join over a few threads for the numeric loops. The loops write disjoint
/// ranges of raw buffers, which the compiler cannot prove; this is the one place
/// that vouches for it.
public enum Parallel {
    /// Calls `body(part)` for part in 0..<parts, concurrently, and returns when all are done.
    public static func run(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 { body(0); return }
        withoutActuallyEscaping(body) { escaping in
            nonisolated(unsafe) let work = escaping
            DispatchQueue.concurrentPerform(iterations: parts) { work($0) }
        }
    }

    /// Splits 0..<n into `parts` contiguous ranges and runs `body(part, lo, hi)` on each.
    public static func chunks(_ n: Int, parts: Int, _ body: (Int, Int, Int) -> Void) {
        let parts = max(1, parts)
        run(parts) { c in body(c, n * c / parts, n * (c + 1) / parts) }
    }

    /// `chunks` with one part per thread (at least one), for the trainer's loops. A
    /// loop of fewer than 64 items costs less than waking the threads, so the
    /// calling thread runs it whole; the other parts are still called, with empty
    /// ranges, so every part's result is written either way.
    static func loop(_ n: Int, threads: Int, _ body: (Int, Int, Int) -> Void) {
        if threads <= 1 || n < 64 {
            body(0, 0, n)
            for part in 1..<max(threads, 1) { body(part, n, n) }
            return
        }
        chunks(n, parts: threads, body)
    }
}
