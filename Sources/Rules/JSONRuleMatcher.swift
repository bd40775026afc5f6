import IPInsights
import IPInsightsFormats
import LogSources

/// Login events from JSON lines that web applications write, with configurable
/// field names (dotted paths reach into nested objects: `client.ip`).
enum JSONRuleMatcher {
    static func apply(_ rule: Rule, _ fields: JSONFields, file: RuleFile, record: LogRecord,
                      _ bytes: UnsafeRawBufferPointer) -> LoginEvent? {
        var start = 0
        while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { return nil }
        guard let document = try? JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[start...])) else { return nil }

        var user: String?
        if let value = lookup(document, fields.user), let text = scalarText(value), !rule.absent.contains(text), !text.isEmpty {
            user = text
        }
        if user == nil && !rule.userOptional { return nil }

        let outcome: LoginEvent.Outcome
        if let field = fields.outcome {
            guard let value = lookup(document, field), let text = scalarText(value) else { return nil }
            if fields.successValues.contains(text) {
                outcome = .success
            } else if fields.failureValues.contains(text) {
                outcome = .failure
            } else {
                return nil
            }
        } else {
            outcome = rule.outcome ?? .failure
        }

        var ip: String?
        var remoteHost: String?
        if let value = lookup(document, fields.ip), let text = value.stringValue, !text.isEmpty {
            if let address = IPAddress(text) {
                ip = address.description
            } else {
                var copy = text
                let isName = copy.withUTF8 { RuleSet.looksLikeHostName(UnsafeRawBufferPointer($0)) }
                guard isName else { return nil }
                remoteHost = text
            }
        }

        var port: Int?
        if let field = fields.port, let value = lookup(document, field) {
            if let n = value.numberValue, n >= 0, n <= 65_535, n == n.rounded() { port = Int(n) }
            else if let s = value.stringValue, let n = Int(s), (0...65_535).contains(n) { port = n }
        }
        var method = rule.method
        if let field = fields.method, let value = lookup(document, field), let text = scalarText(value) { method = text }

        var time = record.time
        if let field = fields.time, let value = lookup(document, field) {
            if let n = value.numberValue, n.isFinite, n >= 0 {
                // Milliseconds when the number is too large to be seconds; years past 9999 are refused.
                let seconds = n > 1e11 ? n / 1000 : n
                if seconds < 253_402_300_800 { time = seconds }
            } else if let s = value.stringValue {
                var copy = s
                if let t = copy.withUTF8({ parseTimestamp(UnsafeRawBufferPointer($0)) }) { time = t }
            }
        }
        return LoginEvent(time: time, host: record.host, service: file.service, outcome: outcome, user: user,
                          ip: ip, port: port, method: method, rule: rule.qualifiedName, remoteHost: remoteHost)
    }

    static func lookup(_ value: JSONValue, _ path: String) -> JSONValue? {
        if let direct = value[path] { return direct }
        var current = value
        for part in path.split(separator: ".") {
            guard let next = current[String(part)] else { return nil }
            current = next
        }
        return current
    }

    static func scalarText(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n)
        default: return nil
        }
    }

    /// An RFC 3339 timestamp, through the syslog parser's reader.
    static func parseTimestamp(_ bytes: UnsafeRawBufferPointer) -> Double? {
        var parser = SyslogHeaderParser(timeZone: .utc, reference: 0)
        return parser.parseTimestamp(bytes)
    }
}
