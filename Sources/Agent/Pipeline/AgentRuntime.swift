import CoreMetrics
import Detection
import IPSightCore
import AlertSinks
import IPInsights
import Logging
import LogSources
import Rules
import Synchronization

/// The agent: sources → rules → detector → alerts, with the store, the
/// retrainer, config reload and the service manager's protocol around them.
///
/// Each batch is decided, its alerts submitted (durably queued), and then its
/// observations and the source's new position committed in one transaction:
/// a restart resumes after the last committed batch, and an alert whose batch
/// was not committed is sent again with the same id (at least once).
public final class AgentRuntime: @unchecked Sendable {
    public let configPath: String?
    public private(set) var config: AgentConfig
    /// The agent's own log (label `ipsight`).
    public let logger: Logger
    public let detector: Detector
    public let store: ObservationStore
    public let stats: AgentStats
    private let processor: EventProcessor
    let router: any AlertRouting
    public let retrainer: Retrainer
    /// How sharing with the fleet goes; nil without a `[fleet]` section.
    public let fleet: FleetSyncState?
    private let stopRequested = Atomic<Bool>(false)
    private let reloadRequested = Atomic<Bool>(false)
    /// The first source that failed, for the exit status once every source has ended.
    private var sourceFailure: String?
    /// Counts since start.
    public private(set) var events = 0
    public private(set) var alertsSent = 0

    /// The sources to read, all of them or only the one under a key (read again
    /// after a failure).
    public typealias SourceFactory = (_ only: String?) throws -> [(key: String, source: any LogSource)]
    private let sourceFactory: SourceFactory?

    /// Opens the state directory, the store and the model, and loads the rules;
    /// throws what would keep the agent from working, before anything is read.
    /// The agent logs to `logger`, alert delivery to `alertLogger`, and both count
    /// through `metrics`.
    /// - Parameter sources: what to read instead of the config's journal and files
    ///   (in-memory sources in tests).
    /// - Parameter deliveryClaims: shared with the other agents of a fleet, so that
    ///   each remote alert is delivered by one of them.
    public init(config: AgentConfig, configPath: String?, router: (any AlertRouting)? = nil,
                logger: Logger = Logger(label: "ipsight"), alertLogger: Logger = Logger(label: "ipsight.alerts"),
                metrics: any MetricsFactory = MetricsSystem.factory, sources: SourceFactory? = nil,
                deliveryClaims: (any DeliveryClaims)? = nil) throws {
        sourceFactory = sources
        var config = config
        // Read once here (a reload reads it again only if it changed): the first
        // calibration below is fitted with it.
        if config.networks == nil { try config.loadNetworks() }
        self.config = config
        self.configPath = configPath
        self.logger = logger
        stats = AgentStats(metrics: metrics)
        guard makeDirectories(config.stateDirectory) else {
            throw ConfigError(file: configPath ?? "(built-in)", line: nil, key: "agent.state_dir",
                              message: "cannot create \(config.stateDirectory)")
        }
        store = try ObservationStore(path: config.databasePath)
        let pruned = try store.prune(before: Clock.wall - config.retention)
        let rules = try AgentRuntime.loadRules(config, configPath: configPath)
        var model: Model? = nil
        if fileExists(config.resolvedModelPath) {
            model = try ModelFile.load(path: config.resolvedModelPath)
        }
        detector = Detector(policy: config.policy, model: model)
        let window = try store.observations(since: Clock.wall - config.retention, learnedOnly: true)
        detector.preload(window)
        // The fleet's failures still inside the stuffing window count after a restart.
        for failure in try store.failures(since: Clock.wall - config.policy.stuffingWindow) {
            detector.recordFailure(user: failure.user, service: failure.service, ip: failure.ip, time: failure.time)
        }
        if let model {
            // A model from elsewhere (`ipsight train`) records no entities: take those
            // already stored as the ones it knows.
            var entities = try store.modelEntities()
            if entities.isEmpty { entities = Set(EntityKeys.pairs(window, policy: config.policy).entityHashes) }
            detector.install(model: model, calibration: Calibration.fit(model: model, observations: window, policy: config.policy),
                            entities: entities)
        }
        processor = EventProcessor(rules: rules, detector: detector, config: config)
        self.router = try router ?? AgentRuntime.makeRouter(config, logger: alertLogger, metrics: metrics, claims: deliveryClaims)
        retrainer = Retrainer(config: config, detector: detector, logger: logger, stats: stats)
        fleet = config.fleet.map { FleetSyncState(hostName: $0.hostName) }
        if let table = config.networks { logger.info("routed-network table \(table.path): \(table.networks.count) networks") }
        let modelState = model == nil ? "no model yet, one is trained after \(config.bootstrapMinLogins) logins" : "model \(config.resolvedModelPath)"
        let riskState = detector.calibration == nil ? "risk not calibrated yet" : "risk calibrated"
        logger.info("state in \(config.stateDirectory): \(window.count) logins in the window (\(pruned) older ones removed); \(modelState); \(riskState)")
    }

    /// The local outputs, and the spooled remote sinks when any are configured.
    static func makeRouter(_ config: AgentConfig, logger: Logger, metrics: any MetricsFactory,
                           claims: (any DeliveryClaims)? = nil) throws -> any AlertRouting {
        let local = try JSONLinesAlertRouter(outputs: config.alertOutputs)
        guard !config.sinks.isEmpty else { return local }
        var sinks: [any AlertSink] = []
        for name in config.sinks.keys.sorted() {
            sinks.append(try SinkConfiguration.makeSink(name: name, settings: config.sinks[name]!))
        }
        var options = AlertRouter.Options()
        // What the stop leaves for the delivery threads once it cancels them.
        options.shutdownGrace = 0.5
        options.claims = claims
        let remote = try AlertRouter(spoolPath: config.stateDirectory + "/alerts.sqlite", sinks: sinks, options: options,
                                     logger: logger, metrics: metrics)
        return FanOutAlertRouter([local, remote])
    }

    static func loadRules(_ config: AgentConfig, configPath: String?) throws -> RuleSet {
        guard let directory = config.rulesDirectory ?? RuleSet.defaultDirectory() else {
            throw ConfigError(file: configPath ?? "(built-in)", line: nil, key: "agent.rules", message: "no rules directory found")
        }
        var rules = try RuleSet.load(directory: directory)
        rules.timeZone = config.utc ? .utc : .local
        return rules
    }

    /// The remote sinks' delivery counters; nil without remote sinks.
    public var delivery: AlertCounters? {
        if let fan = router as? FanOutAlertRouter { return fan.delivery }
        return (router as? AlertRouter)?.counters
    }

    /// Ends the pipeline soon, as SIGTERM does.
    public func stop() { stopRequested.store(true, ordering: .relaxed) }

    /// Reloads the config between two batches, as SIGHUP does.
    public func requestReload() { reloadRequested.store(true, ordering: .relaxed) }

    /// The pipeline until every source ends (sources that are not followed),
    /// `stop()` or a failure; then keeps what was already read and saves it,
    /// within 1.5 s of being asked. True when every source was read to its end.
    func runPipeline() throws -> Bool {
        let group = SourceGroup()
        for (key, source) in try makeSources(nil) { group.add(key, source) }
        SystemdNotifier.ready()
        logger.notice("ipsight agent running: \(group.keys.joined(separator: ", "))")
        let watchdog = SystemdNotifier.watchdogInterval()
        var lastPing = Clock.now
        var lastPrune = Clock.now
        var active = Set(group.keys)
        var failure: Error?
        var skipped = SkipCounts()

        while !active.isEmpty {
            if stopRequested.load(ordering: .relaxed) { break }
            if reloadRequested.exchange(false, ordering: .relaxed) { reload() }
            if let watchdog, Clock.now - lastPing >= watchdog {
                SystemdNotifier.watchdog()
                lastPing = Clock.now
            }
            if Clock.now - lastPrune >= min(config.retrainInterval, 3600) {
                lastPrune = Clock.now
                pruneWindow()
            }
            restartDueSources(group)
            // Also while idle: the refused entry may be the last one for a while.
            reportSkips(group, &skipped)
            guard let item = group.next(timeout: 0.5) else { continue }
            do {
                try handle(item, &active)
            } catch {
                failure = error
                break
            }
        }

        // Stopping: stop the sources, keep and save what was already read; the
        // delivery service drains the alerts after this returns. Bounded, so that
        // with the drain and the API's own stop the agent is gone within 5 s.
        SystemdNotifier.stopping()
        logger.notice("stopping")
        group.stop()
        let stopBy = Clock.now + 1.5
        if failure == nil {
            while Clock.now < stopBy - 0.5, let item = group.next(timeout: 0.05) {
                do { try handle(item, &active) } catch { failure = error; break }
            }
        }
        group.join(timeout: max(0, stopBy - Clock.now))
        logger.notice("stopped after \(events) login events, \(alertsSent) alerts")
        if let failure { throw failure }
        // Every source ended and one of them failed: exit with an error so that the
        // service manager restarts the agent rather than leaving it idle.
        if active.isEmpty, let sourceFailure { throw AgentFailure(message: sourceFailure) }
        return active.isEmpty && !config.follow
    }

    /// Tells the log and the counters when a source refused input (a line over the
    /// length limit, binary bytes): skipped, never a crash, but never silent.
    private func reportSkips(_ group: SourceGroup, _ reported: inout SkipCounts) {
        let now = group.skips
        guard now != reported else { return }
        logger.warning("skipped input: \(now.longLines - reported.longLines) over the length limit, \(now.binaryLines - reported.binaryLines) binary (\(now.longLines + now.binaryLines) since start)")
        stats.recordSkipped(tooLong: now.longLines, binary: now.binaryLines)
        reported = now
    }

    private func handle(_ item: SourceGroup.Item, _ active: inout Set<String>) throws {
        switch item {
        case .records(let key, let records):
            failedRestarts[key] = nil
            let outcome = processor.process(records, source: key, now: Clock.wall)
            if logger.logLevel <= .debug {
                for (_, v) in outcome.verdicts {
                    logger.debug("\(v.decision.rawValue) (\(v.reason)): \(v.summary); \(v.reasons.map { "\($0.0): \($0.1)" }.joined(separator: "; "))")
                }
            }
            if outcome.invalidScores > 0 {
                logger.warning("\(outcome.invalidScores) logins had no finite risk score and were challenged: the model or its calibration is broken")
            }
            // One write to disk for the batch's alerts, not one per alert: an alert storm
            // (every login alerting) must not slow scoring down to the disk's sync rate.
            if !outcome.alerts.isEmpty { try router.submit(outcome.alerts) }
            let now = Clock.wall
            stats.recordBatch(events: outcome.events,
                              decisions: outcome.verdicts.map { ($0.1.decision, $0.0.time.map { now - $0 }) },
                              alerts: outcome.alerts.count)
            var positions: [String: String] = [:]
            if let position = outcome.position { positions[key] = position }
            // Failures are kept only to share them: the fleet counts credential
            // stuffing across hosts (a single host counts them in memory).
            try store.commit(outcome.observations, failures: fleet == nil ? [] : outcome.failures, positions: positions)
            events += outcome.events
            alertsSent += outcome.alerts.count
        case .finished(let key):
            active.remove(key)
        case .failed(let key, let error):
            if config.follow && !stopRequested.load(ordering: .relaxed) {
                // A following agent keeps every source: an I/O error (a file made
                // unreadable, descriptors exhausted) is retried from the saved
                // position with growing pauses, never a crash loop.
                let attempt = (pendingRestarts[key]?.attempt ?? failedRestarts[key] ?? 0) + 1
                let pause = min(60, Double(1 << min(attempt - 1, 6)))
                pendingRestarts[key] = (attempt, Clock.now + pause)
                logger.error("\(key): \(error); reading it again in \(Format.duration(pause))")
                return
            }
            logger.error("\(key): \(error)")
            if sourceFailure == nil { sourceFailure = "\(key): \(error)" }
            active.remove(key)
        }
    }

    /// Failed sources waiting to be opened again, with their attempt count.
    private var pendingRestarts: [String: (attempt: Int, at: Double)] = [:]
    /// Attempts of sources restarted since their last failure.
    private var failedRestarts: [String: Int] = [:]

    private func restartDueSources(_ group: SourceGroup) {
        for (key, restart) in pendingRestarts where restart.at <= Clock.now {
            pendingRestarts[key] = nil
            do {
                for (key, source) in try makeSources(key) { group.add(key, source) }
                failedRestarts[key] = restart.attempt
                logger.notice("\(key): reading again (attempt \(restart.attempt))")
            } catch {
                let pause = min(60, Double(1 << min(restart.attempt, 6)))
                pendingRestarts[key] = (restart.attempt + 1, Clock.now + pause)
                logger.error("\(key): \(error); reading it again in \(Format.duration(pause))")
            }
        }
    }

    private func makeSources(_ only: String?) throws -> [(key: String, source: any LogSource)] {
        if let sourceFactory { return try sourceFactory(only) }
        let rules = try AgentRuntime.loadRules(config, configPath: configPath)
        return try sourcePlan(config, rules: rules).makeSources(store: store, only: only)
    }

    /// What the config reads, as `ipsight parse` would read it.
    func sourcePlan(_ config: AgentConfig, rules: RuleSet) -> SourcePlan {
        var plan = SourcePlan()
        if config.journal {
            plan.journal = .local
            plan.journalMatches = rules.journalMatches.map { $0.map(\.text) }
        }
        plan.files = config.files
        plan.fileIdentifiers = config.fileIdentifiers
        plan.follow = config.follow
        plan.startAtEnd = config.startAtEnd
        plan.header = SyslogHeaderParser(timeZone: config.utc ? .utc : .local)
        // Lines lost to rotation (a rotated file deleted or unreadable) are never silent.
        plan.onGap = { [logger, stats] gap in
            logger.warning("lines lost: \(gap)")
            stats.recordFileGap(files: gap.files)
        }
        return plan
    }

    /// SIGHUP: a new config that validates takes effect; one that does not is
    /// refused and the running one stays.
    func reload() {
        SystemdNotifier.reloading()
        defer { SystemdNotifier.ready() }
        reloadMemory()
        guard let path = configPath else {
            logger.notice("reload: running on the built-in config, no config file to reload")
            return
        }
        do {
            var new = try AgentConfig.load(path: path)
            // An unreadable or malformed table refuses the whole reload, like any bad key.
            try new.loadNetworks(reusing: config.networks)
            if new.entity != config.entity {
                // Histories and the model are keyed by entity: a new key needs a restart.
                logger.warning("reload: agent.entity changes only on restart; keeping \(config.entity.rawValue)")
                new.entity = config.entity
            }
            let rules = try AgentRuntime.loadRules(new, configPath: path)
            if new.journal != config.journal || new.files != config.files || new.fileIdentifiers != config.fileIdentifiers || new.stateDirectory != config.stateDirectory
                || new.alertOutputs != config.alertOutputs || new.modelPath != config.modelPath {
                logger.warning("reload: sources, state_dir, model and alert output change only on restart")
            }
            let tableChanged = new.networks !== config.networks
            processor.reconfigure(new, rules: rules)
            retrainer.reconfigure(new)
            config = new
            logger.notice("reloaded \(path)")
            if tableChanged {
                // The risk weights were fitted with the old table: refitted with the
                // new one, scoring keeps the old pair until then.
                let table = new.networks.map { "routed-network table \($0.path): \($0.networks.count) networks" } ?? "no routed-network table"
                logger.notice("reload: \(table); recalibrating the risk")
                retrainer.recalibrate()
            }
        } catch {
            logger.error("reload refused, the running config stays: \(error)")
        }
    }

    /// Reads the learnt logins again (after `ipsight feedback safe` marked some).
    private func reloadMemory() {
        do {
            detector.replaceMemory(try store.observations(since: Clock.wall - config.retention, learnedOnly: true))
        } catch {
            logger.error("reload: \(error)")
        }
    }

    /// Forgets logins older than the retention window, in the store and in memory.
    private func pruneWindow() {
        do {
            let removed = try store.prune(before: Clock.wall - config.retention)
            try store.pruneFailures(before: Clock.wall - max(config.policy.stuffingWindow, ObservationStore.failureRetention))
            if removed > 0 {
                detector.replaceMemory(try store.observations(since: Clock.wall - config.retention, learnedOnly: true))
                logger.info("removed \(removed) logins older than the retention window")
            }
        } catch {
            logger.error("prune: \(error)")
        }
    }
}

/// A failure that ends the agent, with what to say about it.
public struct AgentFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
