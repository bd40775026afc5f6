import IPSightCore

/// The one Elastic Common Schema document of an alert: what `[alerts] output`
/// lines and `[sink.x] type = ecs` both write, byte for byte the same for the
/// same alert. Written straight to bytes: in an alert storm every login's alert
/// passes through here.
///
/// `@timestamp`, `event` (`id`, `kind` alert, `category` authentication, `type`
/// start, `action` login-challenge or login-alert, `outcome`, `severity` 1–4,
/// `severity_name`, `risk_score` 0–100, `count`), `host.name`, `service.name`,
/// `user.name`, `source.ip`, `message`, and the decision's details under
/// `ipsight` (`decision`, `risk`, `dot_product`, `count`, `reasons` as
/// `{"name", "value"}` pairs in order).
public enum ECSDocument {
    public static func encode(_ alert: Alert) -> [UInt8] {
        var out: [UInt8] = []
        append(alert, to: &out)
        return out
    }

    /// Appends the alert's document and a newline.
    public static func append(_ a: Alert, to out: inout [UInt8]) {
        func key(_ k: String) { JSONWriter.appendString(k, to: &out); out.append(UInt8(ascii: ":")) }
        func string(_ k: String, _ v: String) { key(k); JSONWriter.appendString(v, to: &out) }
        func number(_ k: String, _ v: Double) { key(k); JSONWriter.appendNumber(v, to: &out) }
        func comma() { out.append(UInt8(ascii: ",")) }
        func name(_ k: String, _ v: String) {
            key(k); out.append(UInt8(ascii: "{")); string("name", v); out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "{"))
        string("@timestamp", Clock.rfc3339Milliseconds(a.time)); comma()
        key("event"); out.append(UInt8(ascii: "{"))
        string("id", a.id); comma()
        string("kind", "alert"); comma()
        key("category"); out.append(contentsOf: "[\"authentication\"]".utf8); comma()
        key("type"); out.append(contentsOf: "[\"start\"]".utf8); comma()
        string("action", "login-" + a.decision.rawValue); comma()
        string("outcome", a.outcome.rawValue); comma()
        number("severity", Double(severityNumber(a.severity))); comma()
        string("severity_name", a.severity.rawValue); comma()
        // ECS risk scores are 0–100; the risk is a probability.
        number("risk_score", a.risk * 100); comma()
        number("count", Double(a.count))
        out.append(UInt8(ascii: "}")); comma()
        if let host = a.host { name("host", host); comma() }
        name("service", a.service); comma()
        name("user", a.user); comma()
        key("source"); out.append(UInt8(ascii: "{")); string("ip", a.ip); out.append(UInt8(ascii: "}")); comma()
        string("message", AlertText.summary(a)); comma()
        key("ipsight"); out.append(UInt8(ascii: "{"))
        string("decision", a.decision.rawValue); comma()
        number("risk", a.risk); comma()
        number("dot_product", a.dotProduct); comma()
        number("count", Double(a.count)); comma()
        key("reasons"); out.append(UInt8(ascii: "["))
        for (i, (k, v)) in a.reasons.enumerated() {
            if i > 0 { comma() }
            out.append(UInt8(ascii: "{")); string("name", k); comma(); string("value", v); out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}}\n".utf8)
    }

    static func severityNumber(_ s: Alert.Severity) -> Int {
        switch s { case .info: 1; case .warning: 2; case .error: 3; case .critical: 4 }
    }
}
