import IPSightCore
import Foundation

/// The sources of one ingest run, each read on its own thread into one bounded
/// queue that a single consumer takes from: `ipsight parse` prints what it
/// takes, the agent decides it.
///
/// Bounded by batches and by records: a source that gets ahead waits, so memory
/// stays flat while the consumer catches up (a batch can hold tens of thousands of
/// records, each a few hundred bytes). A source's thread owns it from its first read to its
/// last (the journal handle must stay on one thread).
public final class SourceGroup: @unchecked Sendable {
    public enum Item: Sendable {
        case records(source: String, [LogRecord])
        /// The source failed; its thread has ended. `add` it again to retry.
        case failed(source: String, SourceError)
        /// The source read to its end (one that is not followed).
        case finished(source: String)

        var recordCount: Int {
            if case let .records(_, records) = self { return records.count }
            return 0
        }
    }

    private let condition = NSCondition()
    private var items: [Item] = []
    private var closed = false
    private var sources: [String: any LogSource] = [:]
    /// Input refused by sources that have been replaced.
    private var retiredSkips = SkipCounts()
    private var running = 0
    private var queuedRecords = 0
    public let capacity: Int
    public let recordCapacity: Int

    /// - Parameters:
    ///   - capacity: items queued at most.
    ///   - recordCapacity: records queued at most; one batch larger than this still
    ///     goes into an empty queue.
    public init(capacity: Int = 16, recordCapacity: Int = 16_384) {
        self.capacity = max(1, capacity)
        self.recordCapacity = max(1, recordCapacity)
    }

    /// Starts reading `source` under `key`, replacing a source that ended under it.
    public func add(_ key: String, _ source: any LogSource) {
        condition.lock()
        if let old = sources[key] { retiredSkips = retiredSkips + old.skips }
        sources[key] = source
        running += 1
        condition.unlock()
        let thread = Thread { [self] in
            defer {
                condition.lock()
                running -= 1
                condition.broadcast()
                condition.unlock()
            }
            do throws(SourceError) {
                while let records = try source.nextBatch() {
                    if records.isEmpty { continue }
                    if !put(.records(source: key, records)) { return }
                }
                _ = put(.finished(source: key))
            } catch {
                _ = put(.failed(source: key, error))
            }
        }
        thread.name = "ipsight-source"
        thread.start()
    }

    /// The sources' keys, sorted.
    public var keys: [String] {
        condition.lock()
        defer { condition.unlock() }
        return sources.keys.sorted()
    }

    /// Input refused so far by every source.
    public var skips: SkipCounts {
        condition.lock()
        defer { condition.unlock() }
        return sources.values.reduce(retiredSkips) { $0 + $1.skips }
    }

    /// Waits while full; false once stopped (the item is dropped: the source ends).
    private func put(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while (items.count >= capacity || queuedRecords >= recordCapacity) && !items.isEmpty && !closed { condition.wait() }
        if closed { return false }
        items.append(item)
        queuedRecords += item.recordCount
        condition.broadcast()
        return true
    }

    /// The next item, waiting at most `timeout` seconds; nil if none came.
    public func next(timeout: Double) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: min(timeout, 1e9))
        while items.isEmpty {
            if !condition.wait(until: deadline) { break }
        }
        guard !items.isEmpty else { return nil }
        condition.broadcast()
        let item = items.removeFirst()
        queuedRecords -= item.recordCount
        return item
    }

    /// Asks every source to stop and takes no more items; what is queued can
    /// still be taken.
    public func stop() {
        condition.lock()
        closed = true
        let all = Array(sources.values)
        condition.broadcast()
        condition.unlock()
        for source in all { source.stop() }
    }

    /// Waits up to `timeout` seconds for every source's thread to end; true if they did.
    @discardableResult
    public func join(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while running > 0 { if !condition.wait(until: deadline) { break } }
        return running == 0
    }
}
