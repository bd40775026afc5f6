import IPSightCore

/// Slack incoming webhook: `{"text": ...}` in Slack's mrkdwn. The webhook URL is itself
/// the credential, so it comes from a `Secret`.
public struct SlackSink: AlertSink {
    public let name: String
    let url: Secret
    let poster: HTTPPoster

    public init(name: String = "slack", url: Secret, poster: HTTPPoster = HTTPPoster()) {
        self.name = name
        self.url = url
        self.poster = poster
    }

    func body(for alert: Alert) -> [UInt8] {
        var lines = ["*\(Self.escape(AlertText.title(alert)))*", Self.escape(AlertText.summary(alert))]
        for (key, value) in AlertText.facts(alert) { lines.append("• \(Self.escape(key)): `\(Self.escape(value))`") }
        var out: [UInt8] = []
        JSONWriter.append(.object([("text", .string(lines.joined(separator: "\n")))]), to: &out)
        return out
    }

    /// Slack's three control characters; without this a user name like `<!channel>` pings everyone.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default: out.append(c)
            }
        }
        return out
    }

    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        try poster.post(sink: name, url: url.value, headers: [], body: body(for: alert), cancellation: cancellation)
    }
}
