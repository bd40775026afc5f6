import IPSightCore
import Glibc

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

    /// A local write does not wait on anyone: it finishes rather than watching `cancellation`.
    public func deliver(_ alert: Alert, cancellation: DeliveryCancellation) throws(DeliveryError) {
        let line = ECSDocument.encode(alert)
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
