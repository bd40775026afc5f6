import IPSightCore
import Foundation
import LogSources

/// Batches from the sources, each tagged with its source's key, waiting for
/// the pipeline. Bounded: a source that gets ahead waits, so memory stays flat
/// while the detector catches up.
final class BatchInbox: @unchecked Sendable {
    enum Item {
        case batch(source: String, records: [LogRecord])
        case failed(source: String, error: SourceError)
        case finished(source: String)
    }

    private let condition = NSCondition()
    private var items: [Item] = []
    private var closed = false
    let capacity: Int

    init(capacity: Int = 16) { self.capacity = capacity }

    /// Waits while full; false once closed (the item is dropped: the source stops).
    func put(_ item: Item) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !closed { condition.wait() }
        if closed { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// The next item, waiting at most `timeout` seconds.
    func take(timeout: Double) -> Item? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while items.isEmpty {
            if !condition.wait(until: deadline) { break }
        }
        guard !items.isEmpty else { return nil }
        condition.broadcast()
        return items.removeFirst()
    }

    /// Stops accepting items and wakes waiting sources; queued items can still be taken.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// One thread per source, each reading batches into the inbox until its source
/// ends or is stopped (sources block in `nextBatch`, and the journal handle must
/// stay on one thread).
final class SourceThreads: @unchecked Sendable {
    private let sources: [(key: String, source: any LogSource)]
    private let inbox: BatchInbox
    private let done = NSCondition()
    private var running = 0

    init(sources: [(key: String, source: any LogSource)], inbox: BatchInbox) {
        self.sources = sources
        self.inbox = inbox
    }

    func start() {
        running = sources.count
        for (key, source) in sources {
            let thread = Thread { [self] in
                defer {
                    done.lock(); running -= 1; done.broadcast(); done.unlock()
                }
                do throws(SourceError) {
                    while let records = try source.nextBatch() {
                        if records.isEmpty { continue }
                        if !inbox.put(.batch(source: key, records: records)) { return }
                    }
                    _ = inbox.put(.finished(source: key))
                } catch {
                    _ = inbox.put(.failed(source: key, error: error))
                }
            }
            thread.name = "ipsight-source"
            thread.start()
        }
    }

    func stop() { for (_, source) in sources { source.stop() } }

    /// Waits up to `timeout` seconds for every source thread to end; true if they did.
    @discardableResult
    func join(timeout: Double) -> Bool {
        done.lock()
        defer { done.unlock() }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while running > 0 { if !done.wait(until: deadline) { break } }
        return running == 0
    }
}
