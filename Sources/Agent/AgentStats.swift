import IPSightCore
import AlertSinks
import Foundation
import IPInsights

/// The agent's counters and latencies since start, for `/metrics` (Prometheus
/// text) and `/v1/status` (`ipsight status`).
public final class AgentStats: @unchecked Sendable {
    /// Upper bounds (seconds) of the lag histogram: from a login's log time to its decision.
    public static let lagBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60]

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

    public init(now: Double = Clock.wall) {
        s = Snapshot(startedAt: now, events: 0, decisions: [:], alerts: 0, retrains: (0, 0, 0), lastRetrain: nil,
                     lagCounts: [Int](repeating: 0, count: AgentStats.lagBuckets.count), lagSum: 0, lagTotal: 0, skipped: (0, 0))
    }

    public var snapshot: Snapshot { lock.withLock { s } }

    /// A batch from the logs: events read, decisions with how long after their log time they were made, alerts raised.
    public func recordBatch(events: Int, decisions: [(Decision, lag: Double?)], alerts: Int) {
        lock.withLock {
            s.events += events
            s.alerts += alerts
            for (decision, lag) in decisions {
                s.decisions["\(Origin.logs.rawValue)/\(decision.rawValue)", default: 0] += 1
                // A clock step or an old entry replayed is not latency: count the live ones only.
                guard let lag, lag >= 0, lag < 3600 else { continue }
                if let k = AgentStats.lagBuckets.firstIndex(where: { lag <= $0 }) { s.lagCounts[k] += 1 }
                s.lagSum += lag
                s.lagTotal += 1
            }
        }
    }

    /// The sources' refused input so far (their running totals).
    public func recordSkipped(tooLong: Int, binary: Int) {
        lock.withLock { s.skipped = (tooLong, binary) }
    }

    /// A gap in a followed file: `files` rotated files (or the rest of one) lost.
    public func recordFileGap(files: Int) {
        lock.withLock { s.unreadRotated += files }
    }

    public func recordAPIDecision(_ decision: Decision) {
        lock.withLock { s.decisions["\(Origin.api.rawValue)/\(decision.rawValue)", default: 0] += 1 }
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
    }

    /// Prometheus text exposition of the counters, with gauges the caller knows.
    public func render(logins: Int, entities: Int, modelAge: Double?, delivery: AlertCounters?, now: Double = Clock.wall) -> String {
        let s = snapshot
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ lines: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in lines { out += "\(name)\(labels) \(value)\n" }
        }
        metric("ipsight_uptime_seconds", "gauge", "Seconds since the agent started.", [("", number(now - s.startedAt))])
        metric("ipsight_login_events_total", "counter", "Login events the rules extracted from the logs.", [("", "\(s.events)")])
        var decisionLines: [(String, String)] = []
        for origin in [Origin.logs, .api] {
            for decision in Decision.allCases {
                decisionLines.append(("{origin=\"\(origin.rawValue)\",decision=\"\(decision.rawValue)\"}",
                                      "\(s.decisions["\(origin.rawValue)/\(decision.rawValue)"] ?? 0)"))
            }
        }
        metric("ipsight_decisions_total", "counter", "Decisions, by where the login came from (logs or the decide API) and kind.", decisionLines)
        metric("ipsight_skipped_input_total", "counter", "Log lines or journal entries refused unread, by reason.",
               [("{reason=\"too_long\"}", "\(s.skipped.tooLong)"), ("{reason=\"binary\"}", "\(s.skipped.binary)")])
        metric("ipsight_unread_rotated_files_total", "counter",
               "Rotated log files, or the rest of one, that could not be read (deleted, moved away, compressed in a format not read).",
               [("", "\(s.unreadRotated)")])
        metric("ipsight_alerts_total", "counter", "Alerts and challenges submitted to the alert outputs and sinks.", [("", "\(s.alerts)")])
        var lag: [(String, String)] = []
        var cumulative = 0
        for (k, bound) in AgentStats.lagBuckets.enumerated() {
            cumulative += s.lagCounts[k]
            lag.append(("_bucket{le=\"\(number(bound))\"}", "\(cumulative)"))
        }
        lag += [("_bucket{le=\"+Inf\"}", "\(s.lagTotal)"), ("_sum", number(s.lagSum)), ("_count", "\(s.lagTotal)")]
        out += "# HELP ipsight_decision_lag_seconds From a login's time in the log to the agent's decision.\n"
        out += "# TYPE ipsight_decision_lag_seconds histogram\n"
        for (suffix, value) in lag { out += "ipsight_decision_lag_seconds\(suffix) \(value)\n" }
        metric("ipsight_retrains_total", "counter", "Background retrainings, by result.",
               [("{result=\"installed\"}", "\(s.retrains.installed)"), ("{result=\"kept_out\"}", "\(s.retrains.keptOut)"),
                ("{result=\"failed\"}", "\(s.retrains.failed)")])
        metric("ipsight_history_logins", "gauge", "Logins in the retention window the agent learns from.", [("", "\(logins)")])
        metric("ipsight_history_entities", "gauge", "Entities with logins in the window.", [("", "\(entities)")])
        if let modelAge {
            metric("ipsight_agent_model_age_seconds", "gauge", "Seconds since the agent's model file was written.", [("", number(modelAge))])
        }
        if let d = delivery {
            metric("ipsight_alert_deliveries_total", "counter", "Alert deliveries to remote sinks, by result.",
                   [("{result=\"delivered\"}", "\(d.delivered)"), ("{result=\"retried\"}", "\(d.retried)"),
                    ("{result=\"dropped\"}", "\(d.dropped)"), ("{result=\"overflowed\"}", "\(d.overflowed)"),
                    ("{result=\"folded\"}", "\(d.folded)")])
            metric("ipsight_alert_spool_depth", "gauge", "Alert deliveries waiting in the spool.", [("", "\(d.queued)")])
        }
        return out
    }

    private func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
