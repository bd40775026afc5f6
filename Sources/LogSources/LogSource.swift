import IPSightCore
/// A source of log records, read on a thread of the caller's (the agent runs
/// one per source): the journal, a followed file, standard input.
public protocol LogSource: AnyObject, Sendable {
    /// The next records, waiting while there are none yet; nil at the end of a
    /// source that is not followed, or after `stop()`.
    func nextBatch() throws(SourceError) -> [LogRecord]?
    /// Ends `nextBatch` soon, from any thread.
    func stop()
    /// Input refused so far (too long, binary).
    var skips: SkipCounts { get }
}

extension JournalReader: LogSource {}
