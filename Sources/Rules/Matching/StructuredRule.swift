import IPSightCore
import LogSources

/// Events from rules whose pattern ends in `<json>` or `<kv>`: the fields come
/// from the structured part by name, or from a `field-match` pattern over one
/// field's text; the pattern before the part may give the time and the rest.
enum StructuredRule {
    static func apply(_ rule: Rule, _ kind: StructuredKind, file: RuleFile, record: LogRecord,
                      _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ captures: Captures,
                      requiresAddress: Bool, _ context: EventContext) -> RuleSet.EntryOutcome {
        guard let fields = rule.fields,
              let document = StructuredRecord.parse(kind, UnsafeRawBufferPointer(rebasing: bytes[range]))
        else { return .none }
        if !rule.conditions.isEmpty {
            let holds = rule.conditions.contains { alternative in
                alternative.allSatisfy { condition in
                    guard let value = document.text(condition.path) else { return false }
                    return condition.values.contains { FieldValue.matches($0, value) }
                }
            }
            guard holds else { return .none }
        }

        // What the text around the structured part gave, then what a field-match gave.
        var found = Found(bytes, captures, absent: rule.absent)
        found.requiresAddress = requiresAddress
        if !rule.fieldMatches.isEmpty {
            var matched = false
            for fieldMatch in rule.fieldMatches {
                guard var text = document.text(fieldMatch.path) else { continue }
                var inner = Captures()
                let status = text.withUTF8 { fieldMatch.pattern.program.match(UnsafeRawBufferPointer($0), &inner) }
                switch status {
                case .none: continue
                case .ambiguous: return .ambiguous
                case .matched:
                    let more = text.withUTF8 { Found(UnsafeRawBufferPointer($0), inner, absent: rule.absent) }
                    found.fill(from: more, requiresAddress: fieldMatch.pattern.requiresAddress)
                    matched = true
                }
                if matched { break }
            }
            guard matched else { return .none }
        }

        // Named fields come first: the writer put them there for this purpose.
        if let path = fields.user, let text = document.text(path) {
            found.user = text.isEmpty || rule.absent.contains(text) ? nil : text
        }
        let user = found.user ?? rule.user
        if user == nil && !rule.userOptional { return .none }

        let outcome: LoginEvent.Outcome
        if let path = fields.outcome {
            guard let text = document.text(path) else { return .none }
            if fields.successValues.contains(text) {
                outcome = .success
            } else if fields.failureValues.contains(text) {
                outcome = .failure
            } else {
                return .none
            }
        } else {
            outcome = rule.outcome ?? .failure
        }

        var ip: String?
        var remoteHost: String?
        var port = found.port
        if let path = fields.ip, let text = document.text(path), !text.isEmpty, !rule.absent.contains(text) {
            guard let (address, name, written) = endpoint(text) else { return .none }
            ip = address
            remoteHost = name
            if let written { port = written }
        } else if let raw = found.host {
            guard let (address, name) = raw.withUnsafeBytes({ RuleSet.resolveHost($0, requiresAddress: found.requiresAddress) })
            else { return .none }
            ip = address
            remoteHost = name
        }
        if let path = fields.port {
            if let n = document.number(path), n >= 0, n <= 65_535, n == n.rounded() {
                port = Int(n)
            } else if let s = document.text(path), let n = Int(s), (0...65_535).contains(n) {
                port = n
            }
        }
        var method = found.method ?? rule.method
        if let path = fields.method, let text = document.text(path), !text.isEmpty { method = text }

        var time = found.time.map { context.seconds($0, record: record) } ?? record.time
        if let path = fields.time {
            if let n = document.number(path), n.isFinite, n >= 0 {
                // Milliseconds when the number is too large to be seconds; years past 9999 are refused.
                let seconds = n > 1e11 ? n / 1000 : n
                if seconds < 253_402_300_800 { time = seconds }
            } else if var text = document.text(path) {
                let parsed: ParsedTime? = text.withUTF8 { buffer in
                    let raw = UnsafeRawBufferPointer(buffer)
                    guard let (value, end) = TimeText.parse(raw, at: 0), end == raw.count else { return nil }
                    return value
                }
                if let parsed { time = context.seconds(parsed, record: record) }
            }
        }
        return .event(LoginEvent(time: time, host: record.host, service: found.service ?? file.service,
                                 outcome: outcome, user: user, ip: ip, port: port, method: method,
                                 rule: rule.qualifiedName, remoteHost: remoteHost))
    }

    /// A field that names the client: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:5678`,
    /// `[2001:db8::1]:443`, Samba's `ipv4:192.0.2.1:5678`, or a host name. nil for anything else.
    static func endpoint(_ text: String) -> (ip: String?, name: String?, port: Int?)? {
        var body = Substring(text)
        if body.hasPrefix("ipv6:"), let colon = body.lastIndex(of: ":"), colon > body.index(body.startIndex, offsetBy: 5) {
            // Samba writes `ipv6:ADDRESS:PORT` without brackets: the port follows the last colon.
            let address = body[body.index(body.startIndex, offsetBy: 5)..<colon]
            guard let parsed = IPAddress(String(address)), let port = Int(body[body.index(after: colon)...]),
                  (0...65_535).contains(port) else { return nil }
            return (parsed.description, nil, port)
        }
        if body.hasPrefix("ipv4:") { body = body.dropFirst(5) }
        if let address = IPAddress(String(body)) { return (address.description, nil, nil) }
        var host = body
        var port: Int?
        if body.hasPrefix("["), let close = body.firstIndex(of: "]") {
            host = body[body.index(after: body.startIndex)..<close]
            let rest = body[body.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()), (0...65_535).contains(p) else { return nil }
                port = p
            }
        } else if let colon = body.lastIndex(of: ":"), body.firstIndex(of: ":") == colon {
            guard let p = Int(body[body.index(after: colon)...]), (0...65_535).contains(p) else { return nil }
            host = body[..<colon]
            port = p
        }
        if let address = IPAddress(String(host)) { return (address.description, nil, port) }
        var name = String(host)
        let isName = name.withUTF8 { RuleSet.looksLikeHostName(UnsafeRawBufferPointer($0)) }
        return isName ? (nil, name, port) : nil
    }

    /// Captured texts as strings, independent of the bytes they came from.
    struct Found {
        var user: String?
        var host: [UInt8]?
        var requiresAddress = false
        var port: Int?
        var method: String?
        var service: String?
        var time: ParsedTime?

        init(_ bytes: UnsafeRawBufferPointer, _ captures: Captures, absent: [String]) {
            func text(_ range: Range<Int>?) -> String? {
                guard let range, !range.isEmpty else { return nil }
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
                return absent.contains(s) ? nil : s
            }
            user = text(captures.user)
            if let range = captures.host, !range.isEmpty, text(range) != nil { host = Array(bytes[range]) }
            if let range = captures.port, !range.isEmpty {
                var value = 0
                for b in bytes[range] { value = value * 10 + Int(b - 48) }
                if value <= 65_535 { port = value }
            }
            method = text(captures.method)
            service = text(captures.service)
            time = captures.time
        }

        /// Takes what `other` found where nothing was found yet.
        mutating func fill(from other: Found, requiresAddress otherRequires: Bool) {
            user = user ?? other.user
            if host == nil, let h = other.host { host = h; requiresAddress = otherRequires }
            port = port ?? other.port
            method = method ?? other.method
            service = service ?? other.service
            time = time ?? other.time
        }
    }
}
