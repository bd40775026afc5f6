import IPSightCore
/// Turns one line of a log file into a `LogRecord`.
///
/// A line with a syslog header gets its time, host, identifier and pid; any
/// other line (a web server's access log, a JSON line) becomes a record with no
/// identifier whose message is the whole line. Invalid UTF-8 is refused (nil)
/// so the caller counts it as binary input.
///
/// A file that one service writes in its own format (`files = PATH:IDENT`,
/// `parse --identifier IDENT`) is not syslog: with `identifier` set, each whole
/// line is the message of a record with that identifier, and the service's
/// rules read its timestamp.
public struct LineDecoder: Sendable {
    public var header: SyslogHeaderParser
    public var identifier: String?

    public init(header: SyslogHeaderParser = SyslogHeaderParser(), identifier: String? = nil) {
        self.header = header
        self.identifier = identifier
    }

    public mutating func decode(_ line: UnsafeRawBufferPointer, position: RecordPosition = .none) -> LogRecord? {
        if let identifier {
            guard let message = Self.string(line, 0..<line.count) else { return nil }
            return LogRecord(identifier: identifier, message: message, position: position)
        }
        guard let h = header.parse(line) else {
            guard let message = Self.string(line, 0..<line.count) else { return nil }
            return LogRecord(message: message, position: position)
        }
        guard let message = Self.string(line, h.messageStart..<line.count) else { return nil }
        var record = LogRecord(time: h.time, pid: h.pid, message: message, position: position)
        if let host = h.host { record.host = Self.string(line, host) }
        if let ident = h.identifier { record.identifier = Self.string(line, ident) }
        return record
    }

    /// The text of a byte range, or nil if it is not valid UTF-8. ASCII (nearly
    /// every log line) takes a fast path; the generic validator is slow per call.
    @inline(__always)
    public static func string(_ line: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        let slice = UnsafeRawBufferPointer(rebasing: line[range]).assumingMemoryBound(to: UInt8.self)
        var ascii = true
        for b in slice where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: slice, as: UTF8.self) }
        return String(validating: slice, as: UTF8.self)
    }
}
