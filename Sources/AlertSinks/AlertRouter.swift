import Glibc
import Synchronization

/// Ties the spool, the sinks and the delivery thread together: `submit` queues an
/// alert durably for every sink, the delivery thread sends what is due, retries with
/// backoff per sink, and picks up where it left off when opened on the same file.
public final class AlertRouter: AlertRouting {
    public struct Options: Sendable {
        /// Spool rows kept at most; past this the oldest are dropped and counted.
        public var capacity: Int
        /// Per-sink backoff after a retryable failure.
        public var backoff: Backoff
        /// The rate limit applied to each sink unless `foldBySink` names it.
        public var fold: FoldPolicy
        public var foldBySink: [String: FoldPolicy]
        /// Rows read from the spool per pass.
        public var batchSize: Int

        public init(capacity: Int = 100_000, backoff: Backoff = Backoff(), fold: FoldPolicy = FoldPolicy(limit: 3, window: 600),
                    foldBySink: [String: FoldPolicy] = [:], batchSize: Int = 64) {
            self.capacity = capacity
            self.backoff = backoff
            self.fold = fold
            self.foldBySink = foldBySink
            self.batchSize = batchSize
        }
    }

    /// Delivery-thread state: touched by that thread, and by `drain` under the lock.
    private struct SinkHealth {
        var failures = 0
        var blockedUntil = 0.0
    }

    private struct Control {
        var stopping = false
        var draining = false
        var health: [String: SinkHealth] = [:]
    }

    public let spoolPath: String
    private let sinks: [String: any AlertSink]
    private let sinkNames: [String]
    private let options: Options
    private let logger: AlertLogger
    private let spool: Spool
    private let counterSet = CounterSet()
    private let folders: Mutex<[String: BurstFolder]>
    private let control = Mutex(Control())
    private let wakeup = Wakeup()
    private let worker = Mutex<DeliveryThread?>(nil)

    /// Opens (or creates) the spool at `spoolPath` and starts delivering, including
    /// anything left from a previous run. Sink names must be unique and stable.
    public init(spoolPath: String, sinks: [any AlertSink], options: Options = Options(),
                logger: AlertLogger = .standardError()) throws(AlertRouterError) {
        var byName: [String: any AlertSink] = [:]
        for sink in sinks {
            guard byName[sink.name] == nil else { throw AlertRouterError(message: "two alert sinks are named \(sink.name)") }
            byName[sink.name] = sink
        }
        self.spoolPath = spoolPath
        self.sinks = byName
        self.sinkNames = sinks.map(\.name)
        self.options = options
        self.logger = logger
        do {
            spool = try Spool(path: spoolPath, capacity: options.capacity)
        } catch {
            throw AlertRouterError(message: error.description)
        }
        folders = Mutex(Dictionary(uniqueKeysWithValues: sinks.map {
            ($0.name, BurstFolder(policy: options.foldBySink[$0.name] ?? options.fold))
        }))
        let orphans = spool.count - ((try? spool.pending(sinks: sinkNames)) ?? 0)
        if orphans > 0 {
            logger.warning("alert spool \(spoolPath): \(orphans) queued alerts are for sinks no longer configured; kept until the spool overflows")
        }
        let thread = try DeliveryThread { [self] in runWorker() }
        worker.withLock { $0 = thread }
    }

    public var counters: AlertCounters { counterSet.snapshot(queued: spool.count) }

    public func submit(_ alert: Alert) throws {
        guard !control.withLock({ $0.stopping }) else {
            throw AlertRouterError(message: "alert \(alert.id) submitted after shutdown")
        }
        let now = Timestamp.now()
        // The fold decisions and the insert happen under one lock, so that concurrent
        // submits cannot interleave a decision with another's row.
        let result = try folders.withLock { folders throws(SpoolError) -> Spool.EnqueueResult in
            let placements = sinkNames.map { name in
                (sink: name, placement: folders[name]!.placement(user: alert.user, ip: alert.ip, now: now))
            }
            return try spool.enqueue(alert, placements: placements, now: now)
        }
        counterSet.folded.add(result.folded, ordering: .relaxed)
        if result.overflowed > 0 {
            counterSet.overflowed.add(result.overflowed, ordering: .relaxed)
            logger.warning("alert spool \(spoolPath) is full (\(spool.capacity) rows): dropped the \(result.overflowed) oldest")
        }
        wakeup.signal()
    }

    /// Delivers everything queued, ignoring backoff schedules and fold windows, until
    /// the spool is empty for the configured sinks or `seconds` have passed.
    public func drain(seconds: Double) {
        let deadline = Timestamp.monotonic() + max(0, seconds)
        control.withLock { control in
            control.draining = true
            // Each sink gets one more try now, whatever its backoff said.
            for name in control.health.keys { control.health[name]!.blockedUntil = 0 }
        }
        defer { control.withLock { $0.draining = false } }
        wakeup.signal()
        while Timestamp.monotonic() < deadline {
            if ((try? spool.pending(sinks: sinkNames)) ?? 0) == 0 { return }
            if control.withLock({ $0.stopping }) { return }
            usleep(20_000)
        }
        let left = (try? spool.pending(sinks: sinkNames)) ?? 0
        if left > 0 { logger.warning("alert drain: \(left) alerts still queued in \(spoolPath); they are delivered after the next start") }
    }

    /// Stops the delivery thread (after its current attempt, at most the sink's timeout)
    /// and closes the spool. Queued alerts stay in the file for the next router. The
    /// delivery thread keeps the router alive until this is called.
    public func shutdown() {
        let wasRunning = control.withLock { control in
            defer { control.stopping = true }
            return !control.stopping
        }
        guard wasRunning else { return }
        wakeup.signal()
        worker.withLock { $0 }?.join()
        spool.close()
    }

    // MARK: - Delivery thread

    private func runWorker() {
        while !control.withLock({ $0.stopping }) {
            do {
                if try !deliverPass() { wakeup.wait(seconds: idleWait()) }
            } catch {
                // The alerts are still in the file; pause so a broken disk is not hammered.
                logger.error("alert delivery paused for 1 s: \(error)")
                wakeup.wait(seconds: 1)
            }
        }
    }

    /// One pass over due rows of sinks not in backoff; true if anything was attempted.
    private func deliverPass() throws(SpoolError) -> Bool {
        let now = Timestamp.now()
        let (ready, draining) = control.withLock { control in
            (sinkNames.filter { (control.health[$0]?.blockedUntil ?? 0) <= now }, control.draining)
        }
        let rows = try spool.due(now: draining ? .infinity : now, sinks: ready, limit: options.batchSize) { error in
            counterSet.dropped.add(1, ordering: .relaxed)
            logger.error("\(error)")
        }
        var failedThisPass: Set<String> = []
        for row in rows {
            if control.withLock({ $0.stopping }) { break }
            // After one failure, the sink's other rows wait for its backoff.
            guard !failedThisPass.contains(row.sink), let sink = sinks[row.sink] else { continue }
            let failure: DeliveryError?
            do throws(DeliveryError) {
                try sink.deliver(row.alert)
                failure = nil
            } catch {
                failure = error
            }
            if let failure {
                failedThisPass.insert(row.sink)
                try handleFailure(failure, row: row)
            } else {
                try spool.delete(row.seq)
                counterSet.delivered.add(1, ordering: .relaxed)
                control.withLock { $0.health[row.sink] = SinkHealth() }
            }
        }
        return !rows.isEmpty
    }

    private func handleFailure(_ error: DeliveryError, row: Spool.Row) throws(SpoolError) {
        switch error.kind {
        case .permanent:
            try spool.delete(row.seq)
            counterSet.dropped.add(1, ordering: .relaxed)
            logger.error("alert \(row.alert.id) dropped: \(error)")
        case .retryable:
            let now = Timestamp.now()
            let delay = control.withLock { control in
                var health = control.health[row.sink] ?? SinkHealth()
                health.failures += 1
                // A receiver's Retry-After wins over a shorter jittered delay, within the cap.
                let delay = max(options.backoff.delay(attempt: health.failures), min(error.retryAfter ?? 0, options.backoff.cap))
                health.blockedUntil = now + delay
                control.health[row.sink] = health
                return delay
            }
            try spool.reschedule(row.seq, attempts: row.attempts + 1, nextAt: now + delay, error: error.description)
            counterSet.retried.add(1, ordering: .relaxed)
            logger.warning("alert \(row.alert.id) will be retried in \(Int(delay.rounded(.up)))s (attempt \(row.attempts + 1)): \(error)")
        }
    }

    /// Sleep until the next row or sink backoff is due, bounded so `stopping` is seen.
    private func idleWait() -> Double {
        let now = Timestamp.now()
        let (ready, blockedUntil, draining) = control.withLock { control in
            let ready = sinkNames.filter { (control.health[$0]?.blockedUntil ?? 0) <= now }
            let blocked = sinkNames.compactMap { name in control.health[name].map(\.blockedUntil) }.filter { $0 > now }.min()
            return (ready, blocked, control.draining)
        }
        var next = blockedUntil ?? now + 1
        if !draining, let due = try? spool.nextDue(sinks: ready) { next = min(next, due) }
        return min(1, max(0.005, next - now))
    }
}

public struct AlertRouterError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
