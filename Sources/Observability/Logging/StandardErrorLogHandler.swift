import Glibc
import Logging

/// The agent's log on standard error, one `write` per line so that lines from
/// different threads never interleave.
///
/// `priorityPrefixed` writes `<N>message`: the form journald reads from a service's
/// standard error, which a supervisor or a file keeps as it is. `terminal` writes
/// the local time and the level in words for a person watching `ipsight run`.
public struct StandardErrorLogHandler: LogHandler {
    public enum Style: Sendable { case priorityPrefixed, terminal }

    public let label: String
    public let style: Style
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, style: Style) {
        self.label = label
        self.style = style
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let text = LogLine.text(label: label, message: event.message,
                                metadata: LogLine.merged(metadata, metadataProvider, event.metadata), error: event.error)
        StandardError.write(line(text, level: event.level))
    }

    /// The whole line for `text` at `level`, newline included.
    func line(_ text: String, level: Logger.Level, now: time_t = time(nil)) -> String {
        switch style {
        case .priorityPrefixed:
            return "<\(LogLine.priority(level))>\(text)\n"
        case .terminal:
            return "\(StandardError.localTime(now)) \(level): \(text)\n"
        }
    }
}

enum StandardError {
    /// One `write(2)` for the line where the kernel takes it whole (a pipe takes up to
    /// PIPE_BUF at once); the rest, if any, follows. Errors are dropped: there is
    /// nowhere left to report them.
    static func write(_ line: String) {
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(2, bytes.baseAddress! + offset, bytes.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }

    /// `2026-12-07 14:03:59` in local time.
    static func localTime(_ seconds: time_t) -> String {
        var t = seconds
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S", &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
