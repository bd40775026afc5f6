import IPSightCore

/// PagerDuty Events API v2 trigger. `dedup_key` is the alert id, so a retried or
/// re-read alert updates the same incident instead of opening a second one.
public struct PagerDutySink: AlertSink {
    public static let eventsURL = "https://events.pagerduty.com/v2/enqueue"
    public let name: String
    let routingKey: Secret
    let url: String
    let poster: HTTPPoster

    public init(name: String = "pagerduty", routingKey: Secret, url: String = PagerDutySink.eventsURL,
                poster: HTTPPoster = HTTPPoster()) {
        self.name = name
        self.routingKey = routingKey
        self.url = url
        self.poster = poster
    }

    func body(for alert: Alert) -> [UInt8] {
        var details: [(String, JSONValue)] = [
            ("user", .string(alert.user)), ("ip", .string(alert.ip)), ("service", .string(alert.service)),
            ("outcome", .string(alert.outcome.rawValue)), ("decision", .string(alert.decision.rawValue)),
            ("risk", .number(alert.risk)), ("dot_product", .number(alert.dotProduct)), ("count", .number(Double(alert.count))),
        ]
        details += alert.reasons.map { ($0.0, .string($0.1)) }
        // PagerDuty rejects summaries over 1024 characters.
        let summary = String(AlertText.summary(alert).prefix(1024))
        var out: [UInt8] = []
        JSONWriter.append(.object([
            ("routing_key", .string(routingKey.value)),
            ("event_action", .string("trigger")),
            ("dedup_key", .string(alert.id)),
            ("payload", .object([
                ("summary", .string(summary)),
                ("source", .string(alert.host ?? "ipsight")),
                ("severity", .string(alert.severity.rawValue)),
                ("timestamp", .string(Clock.rfc3339Milliseconds(alert.time))),
                ("component", .string(alert.service)),
                ("class", .string("login-\(alert.decision)")),
                ("custom_details", .object(details)),
            ])),
            ("client", .string("ipsight")),
        ]), to: &out)
        return out
    }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        try poster.post(sink: name, url: url, headers: [], body: body(for: alert), cancellation: cancellation)
    }
}
