import IPSightCore

/// A source of log records, read on one thread of the caller's (a
/// `SourceGroup` runs one per source): the journal, a followed file, standard
/// input, or an array in a test.
public protocol LogSource: AnyObject, Sendable {
    /// The next records, waiting while there are none yet; nil at the end of a
    /// source that is not followed, or after `stop()`.
    func nextBatch() throws(SourceError) -> [LogRecord]?
    /// Ends `nextBatch` soon, from any thread.
    func stop()
    /// Input refused so far (too long, binary).
    var skips: SkipCounts { get }
}

/// Where a source was read up to, by the key of the source: the journal, or a
/// file by its path. The text of a position is what `RecordPosition.text` gives.
public enum SourceKey {
    public static let journal = "journal"
    public static func file(_ path: String) -> String { "file:" + path }
}

extension RecordPosition {
    /// The position as text for a position store; nil for `.none`.
    public var text: String? {
        switch self {
        case .none: return nil
        case .journal(let cursor): return cursor
        case .file(let position): return position.serialized
        }
    }
}
