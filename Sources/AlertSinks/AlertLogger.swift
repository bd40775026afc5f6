import Glibc

/// A logger shaped like swift-log's (`logger.warning("...")`), so the agent can bridge
/// it to its own logging without this module depending on a logging package.
public struct AlertLogger: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public var label: String
    private let handler: @Sendable (Level, String) -> Void

    public init(label: String, handler: @escaping @Sendable (Level, String) -> Void) {
        self.label = label
        self.handler = handler
    }

    /// Lines on standard error with the `<N>` priority prefixes journald understands.
    public static func standardError(label: String = "ipsight.alerts", minimum: Level = .info) -> AlertLogger {
        AlertLogger(label: label) { level, message in
            guard level >= minimum else { return }
            let priority = switch level { case .debug: 7; case .info: 6; case .warning: 4; case .error: 3 }
            // write(2) directly: one call per line keeps lines from different threads whole.
            let line = Array("<\(priority)>\(label): \(message)\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }
    }

    public static let discarding = AlertLogger(label: "discard") { _, _ in }

    public func debug(_ message: @autoclosure () -> String) { handler(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { handler(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { handler(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { handler(.error, message()) }
}
