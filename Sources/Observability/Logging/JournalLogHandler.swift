import CSystemd
import Glibc
import Logging

/// The agent's log as native journal entries, through `sd_journal_sendv`.
///
/// Chosen over `<N>` prefixes on a standard error that systemd connects to the
/// journal because the stream splits a message at each newline (an error text
/// quoting a receiver's answer becomes several entries, the later ones at the
/// default priority), depends on the unit leaving `SyslogLevelPrefix=` on, and
/// takes its identifier from the unit or the process name. Here every message is
/// one entry with its PRIORITY, `SYSLOG_IDENTIFIER=ipsight`, the logger in
/// `IPSIGHT_LOGGER` (`journalctl IPSIGHT_LOGGER=ipsight.alerts` shows alert
/// delivery alone) and the code location. libsystemd is linked already for the
/// journal source. An entry journald refuses (it is restarting) goes to standard
/// error with its prefix instead, so no message is lost.
public struct JournalLogHandler: LogHandler {
    public static let identifier = "ipsight"

    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let text = LogLine.text(label: label, message: event.message,
                                metadata: LogLine.merged(metadata, metadataProvider, event.metadata), error: event.error)
        let priority = LogLine.priority(event.level)
        let fields = [
            "MESSAGE=" + text,
            "PRIORITY=\(priority)",
            "SYSLOG_IDENTIFIER=" + Self.identifier,
            "IPSIGHT_LOGGER=" + label,
            "CODE_FILE=" + event.file,
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=" + event.function,
        ]
        if Self.send(fields) < 0 {
            StandardError.write("<\(priority)>\(text)\n")
        }
    }

    /// Sends one entry; `sd_journal_sendv`'s result (negative errno on failure).
    /// A value with a newline is sent in the journal's binary-safe form by libsystemd.
    static func send(_ fields: [String]) -> Int32 {
        var bytes: [UInt8] = []
        var ranges: [(start: Int, count: Int)] = []
        for field in fields {
            ranges.append((bytes.count, field.utf8.count))
            bytes.append(contentsOf: field.utf8)
        }
        return bytes.withUnsafeMutableBufferPointer { buffer in
            let vectors = ranges.map { iovec(iov_base: UnsafeMutableRawPointer(buffer.baseAddress! + $0.start), iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}
