import IPSightCore

/// Microsoft Teams workflow webhook: a message with one Adaptive Card attachment.
public struct TeamsSink: AlertSink {
    public let name: String
    let url: Secret
    let poster: HTTPPoster

    public init(name: String = "teams", url: Secret, poster: HTTPPoster = HTTPPoster()) {
        self.name = name
        self.url = url
        self.poster = poster
    }

    func body(for alert: Alert) -> [UInt8] {
        let facts: [JSONValue] = AlertText.facts(alert).map { .object([("title", .string($0.0)), ("value", .string($0.1))]) }
        let card: JSONValue = .object([
            ("$schema", .string("http://adaptivecards.io/schemas/adaptive-card.json")),
            ("type", .string("AdaptiveCard")),
            ("version", .string("1.4")),
            ("body", .array([
                .object([("type", .string("TextBlock")), ("text", .string(AlertText.title(alert))),
                         ("weight", .string("Bolder")), ("size", .string("Medium")), ("wrap", .bool(true)),
                         ("color", .string(alert.severity == .critical || alert.severity == .error ? "Attention" : "Warning"))]),
                .object([("type", .string("TextBlock")), ("text", .string(AlertText.summary(alert))), ("wrap", .bool(true))]),
                .object([("type", .string("FactSet")), ("facts", .array(facts))]),
            ])),
        ])
        var out: [UInt8] = []
        JSONWriter.append(.object([
            ("type", .string("message")),
            ("attachments", .array([.object([
                ("contentType", .string("application/vnd.microsoft.card.adaptive")),
                ("contentUrl", .null),
                ("content", card),
            ])])),
        ]), to: &out)
        return out
    }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        try poster.post(sink: name, url: url.value, headers: [], body: body(for: alert), cancellation: cancellation)
    }
}
