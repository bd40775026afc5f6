import Synchronization

/// A snapshot of the router's counters, for the agent's metrics endpoint.
public struct AlertCounters: Sendable, Equatable {
    /// (alert, sink) deliveries that succeeded.
    public var delivered: Int
    /// Failed attempts that will be tried again.
    public var retried: Int
    /// Deliveries given up on: permanent failures (4xx other than 408/429) and unreadable rows.
    public var dropped: Int
    /// Rows removed, oldest first, because the spool was full.
    public var overflowed: Int
    /// Alerts folded into another by a sink's rate limit.
    public var folded: Int
    /// Rows waiting in the spool now.
    public var queued: Int
}

/// The monotonic counters behind `AlertCounters`; atomics because the caller's thread
/// and the delivery thread both count.
final class CounterSet: Sendable {
    let delivered = Atomic<Int>(0)
    let retried = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let overflowed = Atomic<Int>(0)
    let folded = Atomic<Int>(0)

    func snapshot(queued: Int) -> AlertCounters {
        AlertCounters(delivered: delivered.load(ordering: .relaxed), retried: retried.load(ordering: .relaxed),
                      dropped: dropped.load(ordering: .relaxed), overflowed: overflowed.load(ordering: .relaxed),
                      folded: folded.load(ordering: .relaxed), queued: queued)
    }
}
