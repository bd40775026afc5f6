import CoreMetrics
import IPSightCore
import Foundation
import IPInsights

/// The agent's counters and latencies since start: kept here for `/v1/status`
/// (`ipsight status`) and recorded through swift-metrics for `/metrics`.
public final class AgentStats: @unchecked Sendable {
    /// Upper bounds (seconds) of the lag histogram: from a login's log time to its decision.
    public static let lagBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60]

    /// The help text of every metric recorded here, by name, for the exposition.
    public static let help: [String: String] = [
        "ipsight_uptime_seconds": "Seconds since the agent started.",
        "ipsight_login_events_total": "Login events the rules extracted from the logs.",
        "ipsight_decisions_total": "Decisions, by where the login came from (logs or the decide API) and kind.",
        "ipsight_skipped_input_total": "Log lines or journal entries refused unread, by reason.",
        "ipsight_unread_rotated_files_total":
            "Rotated log files, or the rest of one, that could not be read (deleted, moved away, compressed in a format not read).",
        "ipsight_alerts_total": "Alerts and challenges submitted to the alert outputs and sinks.",
        "ipsight_decision_lag_seconds": "From a login's time in the log to the agent's decision.",
        "ipsight_retrains_total": "Background retrainings, by result.",
        "ipsight_history_logins": "Logins in the retention window the agent learns from.",
        "ipsight_history_entities": "Entities with logins in the window.",
        "ipsight_agent_model_age_seconds": "Seconds since the agent's model file was written.",
    ]
    public static let timerBuckets = ["ipsight_decision_lag_seconds": lagBuckets]

    public enum Origin: String, Sendable { case logs, api }

    public struct Snapshot: Sendable {
        public var startedAt: Double
        public var events: Int
        public var decisions: [String: Int]
        public var alerts: Int
        public var retrains: (installed: Int, keptOut: Int, failed: Int)
        public var lastRetrain: Double?
        public var lagCounts: [Int]
        public var lagSum: Double
        public var lagTotal: Int
        /// Input the sources refused: lines or entries over the length limit, and binary ones.
        public var skipped: (tooLong: Int, binary: Int)
        /// Rotated log files (or the rest of one) that could not be read: deleted,
        /// moved to another directory, or compressed in a format that is not read.
        public var unreadRotated: Int = 0
    }

    private let lock = NSLock()
    private var s: Snapshot
    private let metrics: Metrics
    private var modelAgeGauge: Gauge?

    /// The swift-metrics handles, made once: making one looks its name up in the registry.
    private struct Metrics {
        let factory: any MetricsFactory
        let uptime, logins, entities: Gauge
        let events, alerts, unreadRotated, tooLong, binary: Counter
        let decisions: [Origin: [Decision: Counter]]
        let lag: CoreMetrics.Timer
        let retrains: [RetrainResult: Counter]
    }

    /// - Parameter factory: where the metrics are recorded (the process's registry in
    ///   `ipsight run`; a test's own registry in a test).
    public init(now: Double = Clock.wall, metrics factory: any MetricsFactory = MetricsSystem.factory) {
        s = Snapshot(startedAt: now, events: 0, decisions: [:], alerts: 0, retrains: (0, 0, 0), lastRetrain: nil,
                     lagCounts: [Int](repeating: 0, count: AgentStats.lagBuckets.count), lagSum: 0, lagTotal: 0, skipped: (0, 0))
        func counter(_ name: String, _ dimensions: [(String, String)] = []) -> Counter {
            Counter(label: name, dimensions: dimensions, factory: factory)
        }
        func gauge(_ name: String) -> Gauge { Gauge(label: name, factory: factory) }
        // Every (origin, decision) series exists from the start at 0, as scrapers expect.
        var decisions: [Origin: [Decision: Counter]] = [:]
        for origin in [Origin.logs, .api] {
            for decision in Decision.allCases {
                decisions[origin, default: [:]][decision] =
                    counter("ipsight_decisions_total", [("origin", origin.rawValue), ("decision", decision.rawValue)])
            }
        }
        metrics = Metrics(
            factory: factory,
            uptime: gauge("ipsight_uptime_seconds"), logins: gauge("ipsight_history_logins"),
            entities: gauge("ipsight_history_entities"),
            events: counter("ipsight_login_events_total"), alerts: counter("ipsight_alerts_total"),
            unreadRotated: counter("ipsight_unread_rotated_files_total"),
            tooLong: counter("ipsight_skipped_input_total", [("reason", "too_long")]),
            binary: counter("ipsight_skipped_input_total", [("reason", "binary")]),
            decisions: decisions,
            lag: CoreMetrics.Timer(label: "ipsight_decision_lag_seconds", factory: factory),
            retrains: [.installed: counter("ipsight_retrains_total", [("result", "installed")]),
                       .keptOut: counter("ipsight_retrains_total", [("result", "kept_out")]),
                       .failed: counter("ipsight_retrains_total", [("result", "failed")])])
    }

    public var snapshot: Snapshot { lock.withLock { s } }

    /// A batch from the logs: events read, decisions with how long after their log time they were made, alerts raised.
    public func recordBatch(events: Int, decisions: [(Decision, lag: Double?)], alerts: Int) {
        var counts: [Decision: Int] = [:]
        lock.withLock {
            s.events += events
            s.alerts += alerts
            for (decision, lag) in decisions {
                counts[decision, default: 0] += 1
                // A clock step or an old entry replayed is not latency: count the live ones only.
                guard let lag, lag >= 0, lag < 3600 else { continue }
                if let k = AgentStats.lagBuckets.firstIndex(where: { lag <= $0 }) { s.lagCounts[k] += 1 }
                s.lagSum += lag
                s.lagTotal += 1
                metrics.lag.recordSeconds(lag)
            }
            for (decision, count) in counts { s.decisions["\(Origin.logs.rawValue)/\(decision.rawValue)", default: 0] += count }
        }
        // Once per kind of decision in the batch, not once per login.
        for (decision, count) in counts { metrics.decisions[.logs]![decision]!.increment(by: count) }
        metrics.events.increment(by: events)
        metrics.alerts.increment(by: alerts)
    }

    /// The sources' refused input so far (their running totals).
    public func recordSkipped(tooLong: Int, binary: Int) {
        let (moreTooLong, moreBinary) = lock.withLock {
            // Totals only grow; a source reopened after a failure starts its own again.
            let more = (max(0, tooLong - s.skipped.tooLong), max(0, binary - s.skipped.binary))
            s.skipped = (max(tooLong, s.skipped.tooLong), max(binary, s.skipped.binary))
            return more
        }
        metrics.tooLong.increment(by: moreTooLong)
        metrics.binary.increment(by: moreBinary)
    }

    /// A gap in a followed file: `files` rotated files (or the rest of one) lost.
    public func recordFileGap(files: Int) {
        lock.withLock { s.unreadRotated += files }
        metrics.unreadRotated.increment(by: files)
    }

    public func recordAPIDecision(_ decision: Decision) {
        lock.withLock { s.decisions["\(Origin.api.rawValue)/\(decision.rawValue)", default: 0] += 1 }
        metrics.decisions[.api]![decision]!.increment()
    }

    public enum RetrainResult { case installed, keptOut, failed }

    public func recordRetrain(_ result: RetrainResult, now: Double = Clock.wall) {
        lock.withLock {
            switch result {
            case .installed: s.retrains.installed += 1
            case .keptOut: s.retrains.keptOut += 1
            case .failed: s.retrains.failed += 1
            }
            s.lastRetrain = now
        }
        metrics.retrains[result]!.increment()
    }

    /// Sets the gauges the agent knows only when asked: called before each exposition.
    public func observe(logins: Int, entities: Int, modelAge: Double?, now: Double = Clock.wall) {
        metrics.uptime.record(now - snapshot.startedAt)
        metrics.logins.record(logins)
        metrics.entities.record(entities)
        // Made with the first model: without one there is no age to report.
        if let modelAge {
            let gauge = lock.withLock {
                if let gauge = modelAgeGauge { return gauge }
                let gauge = Gauge(label: "ipsight_agent_model_age_seconds", factory: metrics.factory)
                modelAgeGauge = gauge
                return gauge
            }
            gauge.record(modelAge)
        }
    }
}
