import Agent
import Fleet
import IPSightCore
import Logging
import ServiceLifecycle

/// Fleet mode's sharing, as one service of the agent: every second, this host's
/// new logins and failed logins go up to PostgreSQL (exactly once, keyed by host
/// and local row) and the other hosts' come down into the local store and the
/// detector (known entities; failures for the credential-stuffing check); every
/// ten seconds a heartbeat. Nothing here is on a login's path: the pipeline and
/// the API decide on local data whether the database answers or not.
///
/// When the database is away, every call gives up within `callTimeout`, the state
/// turns degraded, and attempts back off from 1 s to 30 s; the unsent logins wait
/// in SQLite and go up when it returns.
public struct FleetSyncService: Service {
    public struct Options: Sendable {
        public var syncInterval = 1.0
        public var heartbeatInterval = 10.0
        /// How long one database call may take before the database counts as away.
        public var callTimeout = 3.0
        public var firstBackoff = 1.0
        public var maxBackoff = 30.0
        /// Rows per upload and per catch-up page.
        public var pageSize = 1000
        public init() {}
    }

    /// The sync's own threads: its work is short and never blocks (SQLite goes
    /// through a queue of its own), but it must not wait behind whatever else
    /// holds Swift's shared pool, or a slow round would look like an outage.
    static let threads = DedicatedThreads(count: 2, name: "ipsight-fleet")

    /// What the heartbeat reports as the agent's version: the sync's own protocol.
    public static let protocolVersion = "ipsight-fleet-sync/1"

    let agent: AgentRuntime
    let config: FleetConfig
    let options: Options
    let logger: Logger

    public init(agent: AgentRuntime, config: FleetConfig, options: Options = Options(), logger: Logger) {
        self.agent = agent
        self.config = config
        self.options = options
        self.logger = logger
    }

    public func run() async throws {
        let state = agent.fleet ?? FleetSyncState(hostName: config.settings.hostName)
        let history = SharedHistory(path: agent.config.databasePath, detector: agent.detector, hostName: config.settings.hostName)
        let sync = Sync(config: config, history: history, state: state, options: options, logger: logger,
                        retention: agent.config.retention, stuffingWindow: agent.config.policy.stuffingWindow)
        await withTaskExecutorPreference(Self.threads) {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await sync.loop() }
                await waitForShutdown()
                group.cancelAll()
            }
        }
    }
}

/// One agent's sync loop.
private final class Sync: Sendable {
    let config: FleetConfig
    let history: SharedHistory
    let state: FleetSyncState
    let options: FleetSyncService.Options
    let logger: Logger
    /// How old a shared login (or verdict) may be and still be taken.
    let retention: Double
    /// How old a shared failure may be and still count.
    let stuffingWindow: Double

    init(config: FleetConfig, history: SharedHistory, state: FleetSyncState, options: FleetSyncService.Options,
         logger: Logger, retention: Double, stuffingWindow: Double) {
        self.config = config
        self.history = history
        self.state = state
        self.options = options
        self.logger = logger
        self.retention = retention
        self.stuffingWindow = stuffingWindow
    }

    /// Work done in a round, counted even when the round fails half way.
    struct Progress {
        var uploaded = 0
        var received = 0
    }

    /// A pool serves rounds until one fails; once a connection of the sync's own
    /// gets through again, a fresh pool replaces it. The pool would reconnect by
    /// itself, but its pause between attempts grows to a minute over a long outage.
    func loop() async {
        var backoff = 0.0
        while !Task.isCancelled {
            let store: FleetStore
            do {
                store = try FleetStore(config: config, logger: logger)
            } catch {
                await degraded(error, &backoff)
                try? await Task.sleep(for: .seconds(backoff))
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                await serve(store, &backoff)
                group.cancelAll()
            }
        }
    }

    /// Rounds every `syncInterval` until one fails; then attempts with growing
    /// pauses (1 s … 30 s) until the database answers.
    private func serve(_ store: FleetStore, _ backoff: inout Double) async {
        var lastHeartbeat = -Double.infinity
        while !Task.isCancelled {
            var progress = Progress()
            do {
                try await round(store, &progress, &lastHeartbeat)
                backoff = 0
                try? await Task.sleep(for: .seconds(options.syncInterval))
            } catch {
                if Task.isCancelled { return }
                await degraded(error, &backoff, progress)
                break
            }
        }
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(backoff))
            if Task.isCancelled { return }
            do {
                try await withDeadline(options.callTimeout) { try await store.checkConnection() }
                return
            } catch {
                await degraded(error, &backoff)
            }
        }
    }

    /// Upload and catch-up of both streams, and the heartbeat when due.
    private func round(_ store: FleetStore, _ progress: inout Progress, _ lastHeartbeat: inout Double) async throws {
        let beat = Clock.now - lastHeartbeat >= options.heartbeatInterval
        if beat {
            // With each heartbeat (and on each connection): the database may have
            // been restored from a backup meanwhile, behind a pool that reconnected.
            let standing = try await withDeadline(options.callTimeout) { try await store.standing() }
            for change in try await history.reconcile(with: standing) {
                logger.warning("fleet: the database holds less than this agent saw (restored from a backup?): \(change)")
            }
        }
        var readLogins = FleetCursor.start
        for stream in [SharedHistory.Stream.logins, .failures] {
            var positions = try await history.positions(stream)
            try await upload(stream, store, from: positions.uploaded, &progress)
            try await catchUp(stream, store, from: &positions.read, &progress)
            if stream == .logins { readLogins = positions.read }
        }
        try await shareFeedback(store, &progress)
        if beat {
            let heartbeat = AgentHeartbeat(hostName: store.hostName, version: FleetSyncService.protocolVersion,
                                      trainer: config.settings.trainer, readCursor: readLogins)
            try await withDeadline(options.callTimeout) { try await store.heartbeat(agent: heartbeat) }
            lastHeartbeat = Clock.now
        }
        let backlog = try await history.backlog()
        if state.snapshot.connection != .connected {
            logger.notice("fleet: connected to the fleet database as \(store.hostName)")
        }
        state.succeeded(backlog: backlog, uploaded: progress.uploaded, received: progress.received)
    }

    /// Records a failure and the next pause (doubling, from `firstBackoff` to `maxBackoff`).
    private func degraded(_ error: any Error, _ backoff: inout Double, _ progress: Progress = Progress()) async {
        let message = "\(error)"
        backoff = backoff == 0 ? options.firstBackoff : min(options.maxBackoff, backoff * 2)
        let before = state.snapshot
        if before.connection != .degraded || before.lastError != message {
            logger.warning("fleet: degraded, deciding on local data: \(message); trying again in \(formatSeconds(backoff))")
        }
        // The backlog from the saved positions: it keeps growing while the database is away.
        let backlog = try? await history.backlog()
        state.failed(message, backlog: backlog, uploaded: progress.uploaded, received: progress.received)
    }

    /// This host's new rows, a page at a time; the position moves after each commit.
    private func upload(_ stream: SharedHistory.Stream, _ store: FleetStore, from start: Int64,
                        _ progress: inout Progress) async throws {
        try await uploadPages(stream, from: start, &progress,
                              pending: { [history] in try await history.pendingUploads(stream, after: $0, limit: $1) },
                              sequence: \.localSequence,
                              send: { rows in stream == .failures ? try await store.upload(failures: rows)
                                                                  : try await store.upload(logins: rows) })
    }

    /// Pages of `pending` rows sent until a short page, the stream's upload position
    /// saved after each commit.
    private func uploadPages<Row: Sendable>(_ stream: SharedHistory.Stream, from start: Int64, _ progress: inout Progress,
                                            pending: (Int64, Int) async throws -> [Row],
                                            sequence: (Row) -> Int64,
                                            send: @escaping @Sendable ([Row]) async throws -> Int) async throws {
        var position = start
        while !Task.isCancelled {
            let rows = try await pending(position, options.pageSize)
            guard let last = rows.last.map(sequence) else { return }
            progress.uploaded += try await withDeadline(options.callTimeout) { try await send(rows) }
            try await history.saveUploaded(stream, last)
            position = last
            if rows.count < options.pageSize { return }
        }
    }

    /// Verdicts given here go up; those given elsewhere come down and are applied.
    private func shareFeedback(_ store: FleetStore, _ progress: inout Progress) async throws {
        let positions = try await history.positions(.feedback)
        try await uploadPages(.feedback, from: positions.uploaded, &progress,
                              pending: { [history] in try await history.pendingFeedback(after: $0, limit: $1) },
                              sequence: \.localSequence,
                              send: { try await store.upload(feedback: $0) })
        var cursor = positions.read
        while !Task.isCancelled {
            let after = cursor, limit = options.pageSize
            let page = try await withDeadline(options.callTimeout) { try await store.feedback(after: after, limit: limit) }
            if page.next == cursor { return }
            progress.received += try await history.apply(page.verdicts, next: page.next, retention: retention)
            cursor = page.next
            if page.verdicts.count < options.pageSize { return }
        }
    }

    /// The fleet's rows after the cursor, a page at a time, until a short page.
    private func catchUp(_ stream: SharedHistory.Stream, _ store: FleetStore, from cursor: inout FleetCursor,
                         _ progress: inout Progress) async throws {
        while !Task.isCancelled {
            let after = cursor, limit = options.pageSize
            let page = try await withDeadline(options.callTimeout) {
                stream == .logins ? try await store.logins(after: after, limit: limit)
                                  : try await store.failures(after: after, limit: limit)
            }
            progress.received += try await history.learn(stream, page, retention: stream == .failures ? stuffingWindow : retention)
            cursor = page.next
            if page.logins.count < options.pageSize { return }
        }
    }
}
