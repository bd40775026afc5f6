import IPSightCore

/// Splunk HTTP Event Collector: `Authorization: Splunk <token>`, one event per request.
public struct SplunkSink: AlertSink {
    public let name: String
    public let url: String
    let token: Secret
    let sourcetype: String
    let index: String?
    let poster: HTTPPoster

    /// `url` is the collector endpoint, e.g. `https://splunk:8088/services/collector/event`.
    public init(name: String = "splunk", url: String, token: Secret, sourcetype: String = "ipsight:alert",
                index: String? = nil, poster: HTTPPoster = HTTPPoster()) {
        self.name = name
        self.url = url
        self.token = token
        self.sourcetype = sourcetype
        self.index = index
        self.poster = poster
    }

    func body(for alert: Alert) -> [UInt8] {
        var members: [(String, JSONValue)] = [
            ("time", .number(alert.time)),
            ("host", .string(alert.host ?? "ipsight")),
            ("source", .string("ipsight")),
            ("sourcetype", .string(sourcetype)),
        ]
        if let index { members.append(("index", .string(index))) }
        members.append(("event", AlertJSON.encode(alert)))
        var out: [UInt8] = []
        JSONWriter.append(.object(members), to: &out)
        return out
    }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        try poster.post(sink: name, url: url, headers: [("Authorization", "Splunk \(token.value)")], body: body(for: alert), cancellation: cancellation)
    }
}
