import IPSightCore
import Glibc

/// The alert as a JSON object: the spool's storage form and the body of the generic
/// webhook and Splunk events. `decode(encode(a)) == a` for every alert.
public enum AlertJSON {
    public static func encode(_ alert: Alert) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", .string(alert.id)),
            ("time", .number(alert.time)),
            ("timestamp", .string(Clock.rfc3339Milliseconds(alert.time))),
        ]
        if let host = alert.host { members.append(("host", .string(host))) }
        members += [
            ("service", .string(alert.service)),
            ("outcome", .string(alert.outcome.rawValue)),
            ("user", .string(alert.user)),
            ("ip", .string(alert.ip)),
            ("decision", .string(alert.decision.rawValue)),
            ("severity", .string(alert.severity.rawValue)),
            ("risk", .number(alert.risk)),
            ("dot_product", .number(alert.dotProduct)),
            ("summary", .string(alert.summary)),
            // An array of pairs, not an object: keys may repeat and their order matters.
            ("reasons", .array(alert.reasons.map { .array([.string($0.0), .string($0.1)]) })),
            ("count", .number(Double(alert.count))),
        ]
        return .object(members)
    }

    /// The same bytes as `JSONWriter.append(encode(alert))`, written without building
    /// the tree: the spool stores one per alert, thousands a second in an alert storm.
    public static func bytes(_ alert: Alert) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(384 + alert.summary.utf8.count + alert.reasons.count * 64)
        var first = true
        func key(_ name: StaticString) {
            if !first { out.append(contentsOf: [0x2C, 0x20]) }
            first = false
            out.append(0x22)
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [0x22, 0x3A, 0x20])
        }
        func string(_ name: StaticString, _ value: String) {
            key(name)
            JSONWriter.appendString(value, to: &out)
        }
        func number(_ name: StaticString, _ value: Double) {
            key(name)
            // As JSONWriter writes `.number`: whole values as integers.
            if value == value.rounded(), abs(value) < 1e15 {
                out.append(contentsOf: String(Int64(value)).utf8)
            } else {
                JSONWriter.appendNumber(value, to: &out)
            }
        }
        out.append(UInt8(ascii: "{"))
        string("id", alert.id)
        number("time", alert.time)
        string("timestamp", Clock.rfc3339Milliseconds(alert.time))
        if let host = alert.host { string("host", host) }
        string("service", alert.service)
        string("outcome", alert.outcome.rawValue)
        string("user", alert.user)
        string("ip", alert.ip)
        string("decision", alert.decision.rawValue)
        string("severity", alert.severity.rawValue)
        number("risk", alert.risk)
        number("dot_product", alert.dotProduct)
        string("summary", alert.summary)
        key("reasons")
        out.append(UInt8(ascii: "["))
        for (k, (name, value)) in alert.reasons.enumerated() {
            if k > 0 { out.append(contentsOf: [0x2C, 0x20]) }
            out.append(UInt8(ascii: "["))
            JSONWriter.appendString(name, to: &out)
            out.append(contentsOf: [0x2C, 0x20])
            JSONWriter.appendString(value, to: &out)
            out.append(UInt8(ascii: "]"))
        }
        out.append(UInt8(ascii: "]"))
        number("count", Double(alert.count))
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func decode(_ value: JSONValue) throws(AlertDecodingError) -> Alert {
        func string(_ key: String) throws(AlertDecodingError) -> String {
            guard let s = value[key]?.stringValue else { throw AlertDecodingError(field: key) }
            return s
        }
        func number(_ key: String) throws(AlertDecodingError) -> Double {
            guard let n = value[key]?.numberValue else { throw AlertDecodingError(field: key) }
            return n
        }
        guard let severity = Alert.Severity(rawValue: try string("severity")) else { throw AlertDecodingError(field: "severity") }
        guard let outcome = LoginEvent.Outcome(rawValue: try string("outcome")) else { throw AlertDecodingError(field: "outcome") }
        guard let decision = Decision(rawValue: try string("decision")) else { throw AlertDecodingError(field: "decision") }
        var reasons: [(String, String)] = []
        for item in value["reasons"]?.arrayValue ?? [] {
            guard let pair = item.arrayValue, pair.count == 2, let k = pair[0].stringValue, let v = pair[1].stringValue else {
                throw AlertDecodingError(field: "reasons")
            }
            reasons.append((k, v))
        }
        return Alert(id: try string("id"), time: try number("time"), host: value["host"]?.stringValue,
                     service: try string("service"), outcome: outcome, user: try string("user"),
                     ip: try string("ip"), decision: decision, severity: severity,
                     risk: try number("risk"), dotProduct: try number("dot_product"), summary: try string("summary"),
                     reasons: reasons, count: Int(value["count"]?.numberValue ?? 1))
    }
}

public struct AlertDecodingError: Error, CustomStringConvertible {
    public var field: String
    public var description: String { "stored alert has a missing or malformed \"\(field)\"" }
}

