import Logging

/// What every handler of the agent's log writes for one message: the same text on a
/// terminal, in a file and in the journal, and its syslog priority.
public enum LogLine {
    /// The label of the agent's own logger; other loggers (`ipsight.alerts`,
    /// `ipsight.api`) name themselves at the start of each message.
    public static let rootLabel = "ipsight"

    /// The syslog priority of a level (RFC 5424 severity), which journald keeps as
    /// PRIORITY and reads from a `<N>` prefix.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// The message as operators read it: `label: ` unless the logger is the agent's
    /// own, then the message, then any metadata as ` key=value` in key order.
    public static func text(label: String, message: Logger.Message, metadata: Logger.Metadata,
                            error: (any Error)? = nil) -> String {
        var text = label == rootLabel ? "" : label + ": "
        text += message.description
        for key in metadata.keys.sorted() {
            text += " \(key)=\(metadata[key]!)"
        }
        if let error { text += " error=\(error)" }
        return text
    }

    /// The handler's metadata, then the provider's, then the event's (later wins).
    static func merged(_ handler: Logger.Metadata, _ provider: Logger.MetadataProvider?,
                       _ event: Logger.Metadata?) -> Logger.Metadata {
        var merged = handler
        if let provided = provider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, new in new }
        }
        if let event, !event.isEmpty {
            merged.merge(event) { _, new in new }
        }
        return merged
    }
}
