import Glibc
import IPInsightsFormats

/// Elastic Common Schema JSON lines, appended to a file (for Filebeat or Elastic Agent
/// to ship) or written to standard output.
public struct ECSSink: AlertSink {
    public enum Destination: Sendable, Equatable {
        case standardOutput
        case file(String)
    }

    public let name: String
    public let destination: Destination

    public init(name: String = "ecs", destination: Destination) {
        self.name = name
        self.destination = destination
    }

    func document(for alert: Alert) -> JSONValue {
        var event: [(String, JSONValue)] = [
            ("kind", .string("alert")),
            ("category", .array([.string("authentication")])),
            ("type", .array([.string("start")])),
            ("outcome", .string(alert.outcome)),
            ("action", .string("login-\(alert.decision)")),
            ("id", .string(alert.id)),
            // ECS risk scores are 0–100; the model's risk is a probability.
            ("risk_score", .number(alert.risk * 100)),
            ("severity", .number(Double(Self.severityNumber(alert.severity)))),
            ("created", .string(Timestamp.iso8601(Timestamp.now()))),
        ]
        if alert.count > 1 { event.append(("count", .number(Double(alert.count)))) }
        var document: [(String, JSONValue)] = [
            ("@timestamp", .string(Timestamp.iso8601(alert.time))),
            ("message", .string(AlertText.summary(alert))),
            ("event", .object(event)),
            ("user", .object([("name", .string(alert.user))])),
            ("source", .object([("ip", .string(alert.ip))])),
        ]
        if let host = alert.host { document.append(("host", .object([("name", .string(host))]))) }
        document.append(("service", .object([("name", .string(alert.service))])))
        document.append(("ipsight", .object([
            ("decision", .string(alert.decision)),
            ("risk", .number(alert.risk)),
            ("dot_product", .number(alert.dotProduct)),
            ("count", .number(Double(alert.count))),
            ("reasons", .object(alert.reasons.map { ($0.0, .string($0.1)) })),
        ])))
        return .object(document)
    }

    static func severityNumber(_ s: Alert.Severity) -> Int {
        switch s { case .info: 1; case .warning: 2; case .error: 3; case .critical: 4 }
    }

    /// A local write does not wait on anyone: it finishes rather than watching `cancellation`.
    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        var line: [UInt8] = []
        JSONWriter.append(document(for: alert), to: &line)
        line.append(0x0A)
        switch destination {
        case .standardOutput:
            try write(line, to: 1, what: "standard output")
        case .file(let path):
            // Opened per line so that log rotation (rename, then a new file) is followed.
            let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                throw DeliveryError(.retryable, sink: name, reason: "open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            try write(line, to: fd, what: path)
        }
    }

    private func write(_ line: [UInt8], to fd: Int32, what: String) throws(DeliveryError) {
        // One write(2) with O_APPEND keeps each line whole even with other writers.
        var offset = 0
        while offset < line.count {
            let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DeliveryError(.retryable, sink: name, reason: "write \(what): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }
}
