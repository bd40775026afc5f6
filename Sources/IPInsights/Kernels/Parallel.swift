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
}
