import Foundation
import Glibc
import Logging

/// Where the agent's log goes, decided once from what standard error is.
public enum LogOutput: Equatable, Sendable {
    /// systemd connected standard error to the journal: native entries (`JournalLogHandler`).
    case journal
    /// A person at a terminal: time, level in words, message.
    case terminal
    /// Anything else (a file, a pipe, a supervisor): `<N>` priority prefixes.
    case priorityPrefixed

    /// systemd sets `JOURNAL_STREAM=DEVICE:INODE` for a service whose standard error
    /// is the journal; the variable is inherited by children whose standard error
    /// may be elsewhere, so it counts only when it names `fd` itself.
    public static func detect(environment: [String: String] = ProcessInfo.processInfo.environment,
                              fd: Int32 = 2) -> LogOutput {
        var info = stat()
        if let stream = environment["JOURNAL_STREAM"], fstat(fd, &info) == 0 {
            let parts = stream.split(separator: ":")
            if parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]),
               device == UInt64(info.st_dev), inode == UInt64(info.st_ino) {
                return .journal
            }
        }
        return isatty(fd) == 1 ? .terminal : .priorityPrefixed
    }

    public func handler(label: String, level: Logger.Level) -> any LogHandler {
        var handler: any LogHandler = switch self {
        case .journal: JournalLogHandler(label: label)
        case .terminal: StandardErrorLogHandler(label: label, style: .terminal)
        case .priorityPrefixed: StandardErrorLogHandler(label: label, style: .priorityPrefixed)
        }
        handler.logLevel = level
        return handler
    }

    /// Points swift-log at this output for the whole process: once, before the first
    /// `Logger` is made (swift-log allows one bootstrap per process).
    public func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in self.handler(label: label, level: level) }
    }
}
