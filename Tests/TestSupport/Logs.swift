import InMemoryLogging
import Logging

/// swift-log's in-memory handler behind a logger: what the code under test logged,
/// at which level, without reading standard error.
public final class LogCapture: Sendable {
    private let handler: InMemoryLogHandler

    public init() {
        var handler = InMemoryLogHandler()
        handler.logLevel = .trace
        self.handler = handler
    }

    /// A logger whose messages land here; several labels may share one capture.
    public func logger(_ label: String = "ipsight") -> Logger {
        Logger(label: label) { [handler] _ in handler }
    }

    public var entries: [InMemoryLogHandler.Entry] { handler.entries }

    /// The messages logged at `level`, in order.
    public func messages(at level: Logger.Level) -> [String] {
        entries.filter { $0.level == level }.map(\.message.description)
    }
}

extension Logger {
    /// A logger that drops everything: for tests whose subject's log is not the point.
    public static var discarding: Logger { Logger(label: "discard") { _ in SwiftLogNoOpLogHandler() } }
}
