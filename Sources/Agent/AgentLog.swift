#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The agent's own log: one line per message on standard error with a `<N>`
/// syslog priority prefix, which journald turns into the entry's priority.
public struct AgentLog: Sendable {
    public enum Level: Int32, Sendable { case error = 3, warning = 4, notice = 5, info = 6, debug = 7 }

    public var minimum: Level
    public init(minimum: Level = .info) { self.minimum = minimum }

    public func log(_ level: Level, _ message: String) {
        guard level.rawValue <= minimum.rawValue else { return }
        var line = "<\(level.rawValue)>\(message)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    public func error(_ m: String) { log(.error, m) }
    public func warning(_ m: String) { log(.warning, m) }
    public func notice(_ m: String) { log(.notice, m) }
    public func info(_ m: String) { log(.info, m) }
    public func debug(_ m: String) { log(.debug, m) }
}
