import CoreMetrics
import IPSightCore
import Glibc
import Logging
import Synchronization

/// Ties the spool, the sinks and the delivery threads together: `submit` queues alerts
/// durably for every sink; a dispatcher thread hands due rows to each sink's delivery
/// threads (a few at a time, so one slow alert does not hold up the rest), records
/// the outcomes in groups, retries each failed alert on its own backoff, pauses a sink
/// that fails everything, and picks up where it left off when opened on the same file.
public final class AlertRouter: AlertRouting {
    public struct Options: Sendable {
        /// Spool rows kept at most; past this the oldest are dropped and counted.
        public var capacity: Int
        /// Backoff for a failed alert (by its attempts) and for a paused sink (by its pauses).
        public var backoff: Backoff
        /// The rate limit applied to each sink unless `foldBySink` names it.
        public var fold: FoldPolicy
        public var foldBySink: [String: FoldPolicy]
        /// Rows of one sink handed to its delivery threads at a time.
        public var batchSize: Int
        /// Deliveries to one sink at the same time.
        public var concurrency: Int
        /// Different alerts failing in a row (retryable, no success between) that pause
        /// a whole sink: then one probe per backoff period until one succeeds. One
        /// alert failing again and again only backs off itself.
        public var pauseAfterFailures: Int
        /// How long `shutdown` waits for deliveries after cancelling them.
        public var shutdownGrace: Double
        /// What alert times, backoff and pauses are read from (a `ManualClock` in unit
        /// tests); the waits of `drain` and `shutdown` are always real.
        public var clock: any TimeSource
        /// Shared with other agents that may hold the same alerts (a fleet): each
        /// (alert, sink) is delivered by one of them. nil: every alert is this agent's.
        public var claims: (any DeliveryClaims)?
        /// How long an alert another agent holds waits before it is asked about again.
        public var claimRecheck: Double

        public init(capacity: Int = 100_000, backoff: Backoff = Backoff(), fold: FoldPolicy = FoldPolicy(limit: 3, window: 600),
                    foldBySink: [String: FoldPolicy] = [:], batchSize: Int = 64, concurrency: Int = 4,
                    pauseAfterFailures: Int = 3, shutdownGrace: Double = 1, clock: any TimeSource = SystemClock(),
                    claims: (any DeliveryClaims)? = nil, claimRecheck: Double = 30) {
            self.capacity = capacity
            self.backoff = backoff
            self.fold = fold
            self.foldBySink = foldBySink
            self.batchSize = batchSize
            self.concurrency = concurrency
            self.pauseAfterFailures = pauseAfterFailures
            self.shutdownGrace = shutdownGrace
            self.clock = clock
            self.claims = claims
            self.claimRecheck = claimRecheck
        }
    }

    /// A sink's health and the rows it has out, under `control`.
    private struct SinkState {
        /// Rows handed to the delivery threads: not read again until their outcome is recorded.
        var inFlight: Set<Int64> = []
        /// Alerts that failed since the last success.
        var failedInARow: Set<Int64> = []
        /// Pauses since the last success, for the sink's backoff.
        var pauses = 0
        var pausedAt = -Double.infinity
        var pausedUntil = 0.0
        /// After a pause: one delivery at a time until one succeeds.
        var probing = false
    }

    /// One delivery's outcome, waiting to be recorded in the spool.
    private struct Finished {
        enum Outcome {
            case delivered
            case failed(DeliveryError)
            /// Not attempted (its sink paused meanwhile) or cancelled by shutdown: the row stays as it was.
            case untouched
            /// Another agent delivered it.
            case deliveredElsewhere
            /// Another agent holds its claim: asked about again later, not an attempt.
            case heldElsewhere
        }
        var row: Spool.Row
        var outcome: Outcome
        var at: Double
    }

    private struct Control {
        var stopping = false
        var draining = false
        /// Counts `drain` calls; the dispatcher reports the one for which it found nothing left to try.
        var drainRound = 0
        var idleInDrainRound = 0
        /// Rows that failed during the current drain: tried once, not again until it ends.
        var failedInDrain: Set<Int64> = []
        var sinks: [String: SinkState] = [:]
        var finished: [Finished] = []
    }

    public let spoolPath: String
    private let sinks: [String: any AlertSink]
    private let sinkNames: [String]
    private let options: Options
    private let logger: Logger
    private let spool: Spool
    private let counterSet: DeliveryCounters
    private let folders: Mutex<[String: BurstFolder]>
    private let control: Mutex<Control>
    /// Wakes the dispatcher: a submit, a finished delivery, a drain, the shutdown.
    private let wakeup = Wakeup()
    private let queues: [String: WorkQueue<Spool.Row>]
    private let cancellation = DeliveryCancellation()
    private let threads = Mutex<(dispatcher: DeliveryThread?, workers: [DeliveryThread])>((nil, []))
    private let liveWorkers = Atomic<Int>(0)
    private let workersEnded = Wakeup()
    private let overflowLog = Mutex<(last: Double, dropped: Int)>((-.infinity, 0))

    /// The help text of the metrics the router records, by name, for the exposition.
    public static var metricHelp: [String: String] { DeliveryCounters.help }

    /// Opens (or creates) the spool at `spoolPath` and starts delivering, including
    /// anything left from a previous run. Sink names must be unique and stable.
    /// Delivery is logged to `logger` and counted through `metrics`.
    public init(spoolPath: String, sinks: [any AlertSink], options: Options = Options(),
                logger: Logger = Logger(label: "ipsight.alerts"),
                metrics: any MetricsFactory = MetricsSystem.factory) throws(AlertRouterError) {
        var byName: [String: any AlertSink] = [:]
        for sink in sinks {
            guard byName[sink.name] == nil else { throw AlertRouterError(message: "two alert sinks are named \(sink.name)") }
            byName[sink.name] = sink
        }
        var options = options
        options.batchSize = max(1, options.batchSize)
        options.concurrency = max(1, options.concurrency)
        options.pauseAfterFailures = max(1, options.pauseAfterFailures)
        self.spoolPath = spoolPath
        self.sinks = byName
        self.sinkNames = sinks.map(\.name)
        self.options = options
        self.logger = logger
        counterSet = DeliveryCounters(factory: metrics)
        do {
            spool = try Spool(path: spoolPath, capacity: options.capacity)
        } catch {
            throw AlertRouterError(message: error.description)
        }
        folders = Mutex(Dictionary(uniqueKeysWithValues: sinks.map {
            ($0.name, BurstFolder(policy: options.foldBySink[$0.name] ?? options.fold))
        }))
        control = Mutex(Control(sinks: Dictionary(uniqueKeysWithValues: sinks.map { ($0.name, SinkState()) })))
        queues = Dictionary(uniqueKeysWithValues: sinks.map { ($0.name, WorkQueue<Spool.Row>()) })
        counterSet.queued(spool.count)
        let orphans = spool.count - ((try? spool.pending(sinks: sinkNames)) ?? 0)
        if orphans > 0 {
            logger.warning("alert spool \(spoolPath): \(orphans) queued alerts are for sinks no longer configured; kept until the spool overflows")
        }
        do throws(AlertRouterError) {
            var workers: [DeliveryThread] = []
            for name in sinkNames {
                for _ in 0..<options.concurrency {
                    liveWorkers.add(1, ordering: .relaxed)
                    do throws(AlertRouterError) {
                        workers.append(try DeliveryThread { [self] in runDeliveries(sink: name) })
                    } catch {
                        liveWorkers.subtract(1, ordering: .relaxed)
                        throw error
                    }
                }
            }
            let dispatcher = try DeliveryThread { [self] in runDispatcher() }
            threads.withLock { $0 = (dispatcher, workers) }
        } catch {
            // Threads already started end on the closed queues; nothing was delivered yet.
            for queue in queues.values { queue.close() }
            spool.close()
            throw error
        }
    }

    public var counters: AlertCounters { counterSet.snapshot(queued: spool.count) }

    public func submit(_ alert: Alert) throws {
        try submit([alert])
    }

    /// Queues a batch of alerts for every sink in one transaction: on disk when this
    /// returns, none of them when it throws.
    public func submit(_ alerts: [Alert]) throws {
        guard !alerts.isEmpty else { return }
        guard !control.withLock({ $0.stopping }) else {
            throw AlertRouterError(message: "alert \(alerts[0].id) submitted after shutdown")
        }
        let now = options.clock.wall
        // The fold decisions and the insert happen under one lock, so that concurrent
        // submits cannot interleave a decision with another's row.
        let result = try folders.withLock { folders throws(SpoolError) -> Spool.EnqueueResult in
            let batch = alerts.map { alert in
                Spool.Submission(alert: alert, placements: sinkNames.map { name in
                    (sink: name, placement: folders[name]!.placement(user: alert.user, ip: alert.ip, now: now))
                })
            }
            return try spool.enqueue(batch, now: now)
        }
        counterSet.add(.folded, result.folded)
        counterSet.queued(spool.count)
        if result.overflowed > 0 {
            counterSet.add(.overflowed, result.overflowed)
            // At most one warning per 10 s: in a storm every batch overflows.
            let report = overflowLog.withLock { log -> Int? in
                log.dropped += result.overflowed
                guard now - log.last >= 10 else { return nil }
                defer { log = (now, 0) }
                return log.dropped
            }
            if let dropped = report {
                logger.warning("alert spool \(spoolPath) is full (\(spool.capacity) rows): dropped the \(dropped) oldest")
            }
        }
        wakeup.signal()
    }

    /// Delivers everything queued, ignoring backoff schedules and fold windows, until
    /// the spool is empty for the configured sinks, every row left has been tried once
    /// in this drain, or `seconds` have passed. Deliveries still running then go on
    /// (`shutdown` cancels them).
    public func drain(seconds: Double) {
        let deadline = Clock.now + max(0, seconds)
        let round = control.withLock { control in
            control.draining = true
            control.drainRound += 1
            control.failedInDrain = []
            // Each sink gets one more try now, whatever its backoff said.
            for name in control.sinks.keys { control.sinks[name]!.pausedUntil = 0 }
            return control.drainRound
        }
        defer {
            control.withLock { control in
                control.draining = false
                control.failedInDrain = []
            }
        }
        wakeup.signal()
        while Clock.now < deadline {
            if ((try? spool.pending(sinks: sinkNames)) ?? 0) == 0 { return }
            let (stopping, idle) = control.withLock { ($0.stopping, $0.idleInDrainRound == round) }
            if stopping { return }
            if idle { break }
            usleep(10_000)
        }
        let left = (try? spool.pending(sinks: sinkNames)) ?? 0
        if left > 0 { logger.warning("alert drain: \(left) alerts still queued in \(spoolPath); they are delivered after the next start") }
    }

    /// Stops delivering: deliveries in flight are cancelled (an HTTP request is
    /// aborted at once) and stay queued, as does everything not yet sent; the spool is
    /// closed. Waits at most `Options.shutdownGrace` for the delivery threads, so a
    /// hanging receiver cannot hold up the agent's exit. The threads keep the router
    /// alive until this is called.
    public func shutdown() {
        let wasRunning = control.withLock { control in
            defer { control.stopping = true }
            return !control.stopping
        }
        guard wasRunning else { return }
        cancellation.cancel()
        for queue in queues.values { queue.close() }
        wakeup.signal()
        let (dispatcher, workers) = threads.withLock { $0 }
        dispatcher?.join()
        let deadline = Clock.now + max(0, options.shutdownGrace)
        while liveWorkers.load(ordering: .acquiring) > 0 {
            let left = deadline - Clock.now
            if left <= 0 { break }
            workersEnded.wait(seconds: min(left, 0.05))
        }
        let stuck = liveWorkers.load(ordering: .acquiring)
        if stuck > 0 {
            logger.warning("alert delivery: \(stuck) deliveries did not stop within \(options.shutdownGrace)s of shutdown; their alerts stay queued")
            for worker in workers { worker.detach() }
        } else {
            for worker in workers { worker.join() }
        }
        // Outcomes that came in meanwhile: delivered rows are removed, so they are not sent again.
        do { _ = try recordFinished() } catch { logger.error("alert delivery: \(error)") }
        spool.close()
    }

    // MARK: - Dispatcher thread

    private func runDispatcher() {
        while !control.withLock({ $0.stopping }) {
            do {
                if try !dispatchPass() { wakeup.wait(seconds: idleWait()) }
            } catch {
                // The alerts are still in the file; pause so a broken disk is not hammered.
                logger.error("alert delivery paused for 1 s: \(error)")
                wakeup.wait(seconds: 1)
            }
        }
    }

    /// Records finished deliveries, then hands each sink's due rows to its delivery
    /// threads; true if it did either.
    private func dispatchPass() throws(SpoolError) -> Bool {
        let recorded = try recordFinished()
        let now = options.clock.wall
        let (draining, round, plans) = control.withLock { control in
            let plans = sinkNames.map { name -> (String, Int, Set<Int64>) in
                let state = control.sinks[name]!
                let limit = state.pausedUntil > now ? 0 : (state.probing ? 1 : options.batchSize)
                var excluding = state.inFlight
                if control.draining { excluding.formUnion(control.failedInDrain) }
                return (name, max(0, limit - state.inFlight.count), excluding)
            }
            return (control.draining, control.drainRound, plans)
        }
        var dispatched = false
        for (name, slots, excluding) in plans where slots > 0 {
            let rows = try spool.due(now: draining ? .infinity : now, sinks: [name], limit: slots, excluding: excluding) { error in
                counterSet.add(.dropped, 1)
                logger.error("\(error)")
            }
            guard !rows.isEmpty else { continue }
            control.withLock { control in
                for row in rows { control.sinks[name]!.inFlight.insert(row.seq) }
            }
            for row in rows { queues[name]!.put(row) }
            dispatched = true
        }
        // Rows leave the spool when recorded above or when unreadable in `due`.
        counterSet.queued(spool.count)
        if draining && !dispatched && !recorded {
            control.withLock { control in
                // Nothing out and nothing left to try: the drain need not wait for its deadline.
                if control.drainRound == round && control.finished.isEmpty && control.sinks.values.allSatisfy({ $0.inFlight.isEmpty }) {
                    control.idleInDrainRound = round
                }
            }
        }
        return dispatched || recorded
    }

    /// Writes the outcomes finished so far to the spool in one transaction; true if there were any.
    private func recordFinished() throws(SpoolError) -> Bool {
        let batch = control.withLock { control in
            defer { control.finished = [] }
            return control.finished
        }
        guard !batch.isEmpty else { return false }
        var completions: [Spool.Completion] = []
        var delivered = 0, dropped = 0, retried = 0, elsewhere = 0
        for finished in batch {
            let row = finished.row
            switch finished.outcome {
            case .delivered:
                completions.append(.remove(row.seq))
                delivered += 1
            case .failed(let error) where error.kind == .permanent:
                completions.append(.remove(row.seq))
                dropped += 1
                logger.error("alert \(row.alert.id) dropped: \(error)")
            case .failed(let error):
                // Each alert backs off on its own attempts (kept in the spool, so across
                // restarts too); a receiver's Retry-After wins over a shorter delay, within the cap.
                let attempts = row.attempts + 1
                let delay = max(options.backoff.delay(attempt: attempts), min(error.retryAfter ?? 0, options.backoff.cap))
                completions.append(.retry(row.seq, attempts: attempts, nextAt: finished.at + delay, error: error.description))
                retried += 1
                logger.warning("alert \(row.alert.id) will be retried in \(Int(delay.rounded(.up)))s (attempt \(attempts)): \(error)")
            case .deliveredElsewhere:
                completions.append(.remove(row.seq))
                elsewhere += 1
            case .heldElsewhere:
                completions.append(.retry(row.seq, attempts: row.attempts, nextAt: finished.at + options.claimRecheck,
                                          error: "held by another agent's delivery claim"))
            case .untouched:
                break
            }
        }
        do {
            try spool.complete(completions) {
                counterSet.add(.delivered, delivered)
                counterSet.add(.dropped, dropped)
                counterSet.add(.retried, retried)
                counterSet.add(.claimedElsewhere, elsewhere)
            }
        } catch {
            // Kept for the next pass: the rows stay in flight, so none is sent twice meanwhile.
            control.withLock { $0.finished.insert(contentsOf: batch, at: 0) }
            throw error
        }
        control.withLock { control in
            for finished in batch { control.sinks[finished.row.sink]!.inFlight.remove(finished.row.seq) }
        }
        return true
    }

    /// Sleep until the next row or paused sink is due, bounded so `stopping` is seen.
    private func idleWait() -> Double {
        let now = options.clock.wall
        let (open, excluding, pausedUntil, draining) = control.withLock { control in
            var open: [String] = []
            var excluding: Set<Int64> = []
            var pausedUntil: Double? = nil
            for name in sinkNames {
                let state = control.sinks[name]!
                excluding.formUnion(state.inFlight)
                if state.pausedUntil > now {
                    pausedUntil = min(pausedUntil ?? .infinity, state.pausedUntil)
                } else if state.inFlight.count < (state.probing ? 1 : options.batchSize) {
                    open.append(name)
                }
            }
            return (open, excluding, pausedUntil, control.draining)
        }
        var next = pausedUntil ?? now + 1
        if !draining, let due = try? spool.nextDue(sinks: open, excluding: excluding) { next = min(next, due) }
        return min(1, max(0.005, next - now))
    }

    // MARK: - Delivery threads

    /// One of a sink's delivery threads: takes rows until the router shuts down.
    private func runDeliveries(sink name: String) {
        defer {
            liveWorkers.subtract(1, ordering: .releasing)
            workersEnded.signal()
        }
        let sink = sinks[name]!
        let queue = queues[name]!
        while let row = queue.take() {
            let started = options.clock.wall
            // Queued before its sink was paused: left for after the pause rather than
            // sent to a receiver that is failing.
            let skip = control.withLock { control in
                control.stopping || control.sinks[name]!.pausedUntil > started
            }
            var outcome = Finished.Outcome.untouched
            switch skip ? nil : options.claims?.claim(row.alert, sink: name) ?? .mine {
            case nil: break
            case .deliveredElsewhere: outcome = .deliveredElsewhere
            case .heldElsewhere: outcome = .heldElsewhere
            case .mine:
                do throws(DeliveryError) {
                    try sink.deliver(row.alert, cancellation: cancellation)
                    outcome = .delivered
                    options.claims?.delivered(row.alert, sink: name)
                } catch {
                    // Cancelled by shutdown: not the receiver's fault, and not an attempt.
                    outcome = cancellation.isCancelled ? .untouched : .failed(error)
                }
            }
            let now = options.clock.wall
            control.withLock { control in
                noteHealth(outcome, row: row.seq, sink: name, started: started, now: now, control: &control)
                // Tried once in this drain: a failure, or a claim another agent holds.
                switch outcome {
                case .failed, .heldElsewhere: if control.draining { control.failedInDrain.insert(row.seq) }
                default: break
                }
                control.finished.append(Finished(row: row, outcome: outcome, at: now))
            }
            wakeup.signal()
        }
    }

    /// A success clears the sink's pause; retryable failures of `pauseAfterFailures`
    /// different alerts in a row (or one with Retry-After, or a failed probe) pause it
    /// for its backoff.
    private func noteHealth(_ outcome: Finished.Outcome, row: Int64, sink name: String, started: Double, now: Double,
                            control: inout Control) {
        var state = control.sinks[name]!
        defer { control.sinks[name] = state }
        switch outcome {
        case .delivered:
            state.failedInARow = []
            state.pauses = 0
            state.pausedUntil = 0
            state.probing = false
        case .failed(let error) where error.kind == .retryable:
            // A delivery that began before the latest pause tells nothing new about the receiver.
            guard started >= state.pausedAt else { return }
            state.failedInARow.insert(row)
            guard state.probing || error.retryAfter != nil || state.failedInARow.count >= options.pauseAfterFailures else { return }
            state.pauses += 1
            let delay = max(options.backoff.delay(attempt: state.pauses), min(error.retryAfter ?? 0, options.backoff.cap))
            state.pausedAt = now
            state.pausedUntil = now + delay
            state.probing = true
            state.failedInARow = []
            logger.warning("alert sink \(name) paused for \(Int(delay.rounded(.up)))s after failed deliveries: \(error)")
        case .failed, .untouched, .deliveredElsewhere, .heldElsewhere:
            break
        }
    }
}

public struct AlertRouterError: Error, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
