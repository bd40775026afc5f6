#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AlertSinks
import IPInsightsFormats
import LogSources
import Synchronization

/// The agent's built-in alert output: one ECS-shaped JSON object per alert, on
/// standard output and/or appended to files (fsync'd before `submit` returns, so
/// a submitted alert survives a crash). Stands in until the full router with
/// sinks and spool is configured.
public final class JSONLinesAlertRouter: AlertRouting, @unchecked Sendable {
    private let descriptors: [(fd: Int32, file: Bool)]
    private let lock = Mutex(())

    /// `outputs`: "stdout" or file paths (created 0640, appended to).
    public init(outputs: [String]) throws(ConfigError) {
        var opened: [(fd: Int32, file: Bool)] = []
        for output in outputs {
            if output == "stdout" {
                opened.append((1, false))
                continue
            }
            let fd = open(output, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                let message = String(cString: strerror(errno))
                for (fd, file) in opened where file { close(fd) }
                throw ConfigError(file: output, line: nil, key: "alerts.output", message: message)
            }
            opened.append((fd, true))
        }
        descriptors = opened
    }

    public convenience init(output: String) throws(ConfigError) { try self.init(outputs: [output]) }

    deinit { for (fd, file) in descriptors where file { close(fd) } }

    public func submit(_ alert: Alert) throws {
        let bytes = JSONLinesAlertRouter.encode(alert)
        try lock.withLock { _ throws(AlertWriteError) in
            for (fd, file) in descriptors {
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw AlertWriteError(message: String(cString: strerror(errno)))
                    }
                    offset += n
                }
                if file { fsync(fd) }
            }
        }
    }

    /// Everything is written in `submit`; nothing waits.
    public func drain(seconds: Double) {}

    /// The ECS fields SIEMs index (`@timestamp`, `event.*`, `user.name`,
    /// `source.ip`), with the decision's details under `ipsight`.
    public static func encode(_ a: Alert) -> [UInt8] {
        var out: [UInt8] = []
        func key(_ k: String) { JSONWriter.appendString(k, to: &out); out.append(UInt8(ascii: ":")) }
        func string(_ k: String, _ v: String) { key(k); JSONWriter.appendString(v, to: &out) }
        func comma() { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "{"))
        string("@timestamp", CivilTime.rfc3339(a.time)); comma()
        key("event"); out.append(UInt8(ascii: "{"))
        string("id", a.id); comma()
        string("kind", "alert"); comma()
        key("category"); out.append(contentsOf: Array("[\"authentication\"]".utf8)); comma()
        string("action", a.decision); comma()
        string("outcome", a.outcome); comma()
        string("severity_name", a.severity.rawValue); comma()
        key("risk_score"); JSONWriter.appendNumber(a.risk * 100, to: &out)
        out.append(UInt8(ascii: "}")); comma()
        if let host = a.host {
            key("host"); out.append(UInt8(ascii: "{")); string("name", host); out.append(UInt8(ascii: "}")); comma()
        }
        key("service"); out.append(UInt8(ascii: "{")); string("name", a.service); out.append(UInt8(ascii: "}")); comma()
        key("user"); out.append(UInt8(ascii: "{")); string("name", a.user); out.append(UInt8(ascii: "}")); comma()
        key("source"); out.append(UInt8(ascii: "{")); string("ip", a.ip); out.append(UInt8(ascii: "}")); comma()
        string("message", a.summary); comma()
        key("ipsight"); out.append(UInt8(ascii: "{"))
        string("decision", a.decision); comma()
        key("risk"); JSONWriter.appendNumber(a.risk, to: &out); comma()
        key("dot_product"); JSONWriter.appendNumber(a.dotProduct, to: &out); comma()
        key("reasons"); out.append(UInt8(ascii: "["))
        for (i, (k, v)) in a.reasons.enumerated() {
            if i > 0 { comma() }
            out.append(UInt8(ascii: "{")); string("name", k); comma(); string("value", v); out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: Array("]}}\n".utf8))
        return out
    }
}

struct AlertWriteError: Error, CustomStringConvertible {
    var message: String
    var description: String { "alert output: \(message)" }
}
