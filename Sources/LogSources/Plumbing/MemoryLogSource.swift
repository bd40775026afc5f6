import IPSightCore
import Foundation

/// A log source fed from an array: the in-memory twin of the journal and of a
/// followed file, for tests of everything downstream of reading.
///
/// Hands out the batches it was given in order, then ends, or, when following,
/// waits for `append` until `stop()`. A batch of `fail` throws its error once.
public final class MemoryLogSource: LogSource, @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [Result<[LogRecord], SourceError>]
    private let follow: Bool
    private var stopped = false
    private var skipCounts = SkipCounts()

    public init(_ batches: [[LogRecord]] = [], follow: Bool = false) {
        pending = batches.map { .success($0) }
        self.follow = follow
    }

    /// Records for a waiting reader (a following source).
    public func append(_ records: [LogRecord]) {
        condition.lock()
        pending.append(.success(records))
        condition.broadcast()
        condition.unlock()
    }

    /// The next `nextBatch` throws `error`.
    public func fail(_ error: SourceError) {
        condition.lock()
        pending.append(.failure(error))
        condition.broadcast()
        condition.unlock()
    }

    /// Counts the source reports as refused input.
    public func refuse(_ counts: SkipCounts) {
        condition.lock()
        skipCounts = skipCounts + counts
        condition.unlock()
    }

    public func nextBatch() throws(SourceError) -> [LogRecord]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && follow && !stopped { condition.wait() }
        guard !stopped, !pending.isEmpty else { return nil }
        return try pending.removeFirst().get()
    }

    public func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Batches (and failures) not handed out yet.
    public var pendingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    public var skips: SkipCounts {
        condition.lock()
        defer { condition.unlock() }
        return skipCounts
    }
}
