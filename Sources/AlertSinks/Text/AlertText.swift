import IPSightCore
/// Human-readable pieces shared by the chat sinks.
enum AlertText {
    static func title(_ alert: Alert) -> String {
        let what = alert.decision == .alert ? "Login alert" : "Login challenged"
        return "\(what): \(alert.user) from \(alert.ip)" + (alert.host.map { " on \($0)" } ?? "")
    }

    /// The summary, noting a folded burst so readers know it stands for more than one login.
    static func summary(_ alert: Alert) -> String {
        alert.count > 1 ? "\(alert.summary) (\(alert.count) similar alerts folded into this one)" : alert.summary
    }

    static func facts(_ alert: Alert) -> [(String, String)] {
        var facts = [("User", alert.user), ("Source IP", alert.ip), ("Service", alert.service),
                     ("Outcome", alert.outcome.rawValue), ("Risk", formatRisk(alert.risk)), ("Severity", alert.severity.rawValue),
                     ("Time", Clock.rfc3339Milliseconds(alert.time))]
        if let host = alert.host { facts.insert(("Host", host), at: 0) }
        if alert.count > 1 { facts.append(("Folded alerts", String(alert.count))) }
        return facts + alert.reasons
    }

    static func formatRisk(_ risk: Double) -> String {
        let scaled = (risk * 1000).rounded() / 1000
        return String(scaled)
    }
}
