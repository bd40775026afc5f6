import CoreMetrics
import Synchronization

/// A snapshot of the router's counters, for the agent's status.
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
    /// Alerts another agent of the fleet delivered (its delivery claim).
    public var claimedElsewhere: Int
    /// Rows waiting in the spool now.
    public var queued: Int
}

/// The router's counters, kept twice on purpose: atomics the status reads back (the
/// caller's thread and the delivery threads both count), and swift-metrics counters
/// for `/metrics`, which cannot be read back.
final class DeliveryCounters: Sendable {
    enum Result: String, CaseIterable { case delivered, retried, dropped, overflowed, folded, claimedElsewhere = "claimed_elsewhere" }

    /// The help text of the metrics recorded here, by name.
    static let help: [String: String] = [
        "ipsight_alert_deliveries_total": "Alert deliveries to remote sinks, by result.",
        "ipsight_alert_spool_depth": "Alert deliveries waiting in the spool.",
    ]

    private let delivered = Atomic<Int>(0)
    private let retried = Atomic<Int>(0)
    private let dropped = Atomic<Int>(0)
    private let overflowed = Atomic<Int>(0)
    private let folded = Atomic<Int>(0)
    private let claimedElsewhere = Atomic<Int>(0)
    private let metrics: [Result: Counter]
    private let depth: Gauge

    init(factory: any MetricsFactory) {
        metrics = Dictionary(uniqueKeysWithValues: Result.allCases.map { result in
            (result, Counter(label: "ipsight_alert_deliveries_total", dimensions: [("result", result.rawValue)], factory: factory))
        })
        depth = Gauge(label: "ipsight_alert_spool_depth", factory: factory)
    }

    func add(_ result: Result, _ n: Int) {
        guard n > 0 else { return }
        switch result {
        case .delivered: delivered.add(n, ordering: .relaxed)
        case .retried: retried.add(n, ordering: .relaxed)
        case .dropped: dropped.add(n, ordering: .relaxed)
        case .overflowed: overflowed.add(n, ordering: .relaxed)
        case .folded: folded.add(n, ordering: .relaxed)
        case .claimedElsewhere: claimedElsewhere.add(n, ordering: .relaxed)
        }
        metrics[result]!.increment(by: n)
    }

    /// The spool's rows now, whenever it changes.
    func queued(_ rows: Int) {
        depth.record(rows)
    }

    func snapshot(queued: Int) -> AlertCounters {
        AlertCounters(delivered: delivered.load(ordering: .relaxed), retried: retried.load(ordering: .relaxed),
                      dropped: dropped.load(ordering: .relaxed), overflowed: overflowed.load(ordering: .relaxed),
                      folded: folded.load(ordering: .relaxed), claimedElsewhere: claimedElsewhere.load(ordering: .relaxed),
                      queued: queued)
    }
}
