/// Turns one line of a log file into a `LogRecord`.
///
/// A line with a syslog header gets its time, host, identifier and pid; any
/// other line (a web server's access log, a JSON line) becomes a record with no
/// identifier whose message is the whole line. Invalid UTF-8 is refused (nil)
/// so the caller counts it as binary input.
public struct LineDecoder: Sendable {
    public var header: SyslogHeaderParser

    public init(header: SyslogHeaderParser = SyslogHeaderParser()) {
        self.header = header
    }

    public mutating func decode(_ line: UnsafeRawBufferPointer, position: RecordPosition = .none) -> LogRecord? {
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

    @inline(__always)
    static func string(_ line: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        let slice = UnsafeRawBufferPointer(rebasing: line[range])
        return String(validating: slice.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
    }
}
