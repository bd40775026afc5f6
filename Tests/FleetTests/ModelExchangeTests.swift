import Agent
import Fleet
import FleetSync
import Foundation
import IPInsights
import IPSightCore
import Logging
import ServiceLifecycle
import Testing
import TestSupport

/// The fleet's one model on a real PostgreSQL: the agent holding the trainer lock
/// trains and publishes, the others adopt, and the lock passes on when its holder
/// goes. Agents are in-process, each with a state directory of its own.
@Suite(.enabled(if: !TestPostgres.skipped, "IPSIGHT_SKIP_POSTGRES=1"))
struct ModelExchangeTests {
    /// An agent whose store already holds the fleet's window (as catch-up leaves it).
    static func agent(_ dir: TemporaryDirectory, logins: Int = 300) throws -> AgentRuntime {
        var c = AgentConfig()
        c.stateDirectory = dir.path
        c.rulesDirectory = PackagePaths.root + "/rules"
        c.journal = false
        c.files = []
        c.retention = 3650 * 86_400
        c.retrainInterval = 3650 * 86_400
        c.bootstrapMinLogins = 200
        let agent = try AgentRuntime(config: c, configPath: nil, router: CollectingAlertRouter(), logger: .discarding,
                                     sources: { _ in [] })
        try agent.store.commit(Synthetic.observations(logins), positions: [:])
        return agent
    }

    static func exchange(_ fleet: TestFleet, _ agent: AgentRuntime, host: String, trainer: Bool,
                         poll: Double = 0.3) throws -> (ModelExchange, FleetStore) {
        var logger = Logger(label: "fleet-test")
        logger.logLevel = .critical
        let store = try FleetStore(config: try FleetConfig(settings: fleet.settings(host: host, trainer: trainer)), logger: logger)
        return (try ModelExchange(store: store, agent: agent, settings: fleet.settings(host: host, trainer: trainer),
                                  logger: logger, pollInterval: poll), store)
    }

    /// Runs the store's client and the exchange until the returned task is cancelled.
    static func start(_ exchange: ModelExchange, _ store: FleetStore) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await store.run() }
                group.addTask { await exchange.run() }
                await group.waitForAll()
            }
        }
    }

    static func eventually(seconds: Double = 30, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return try await condition()
    }

    @Test func theTrainerPublishesAndAnAgentThatMayNotTrainAdoptsIt() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let dirA = TemporaryDirectory(), dirB = TemporaryDirectory()
        defer { dirA.remove(); dirB.remove() }
        let a = try Self.agent(dirA), b = try Self.agent(dirB)

        let (exchangeB, storeB) = try Self.exchange(fleet, b, host: "host-b", trainer: false)
        // Not a trainer: with enough logins for a first model, it still trains none.
        b.retrainer.step()
        #expect(b.detector.model == nil)

        let (exchangeA, storeA) = try Self.exchange(fleet, a, host: "host-a", trainer: true)
        let runningA = Self.start(exchangeA, storeA), runningB = Self.start(exchangeB, storeB)
        defer { runningA.cancel(); runningB.cancel() }
        // The lock is A's once it lets its retrainer train: the first model is trained and published.
        #expect(await Self.eventually {
            a.retrainer.step()
            return a.detector.model != nil
        })
        #expect(await Self.eventually { exchangeA.currentVersion == 1 })
        let published = try #require(try await fleet.withStore { try await $0.latestModel() })
        #expect(published.publication.trainedBy == "host-a")
        #expect(published.publication.model == ModelFile.encode(try #require(a.detector.model)))

        // B adopts it: the same model in its detector and file, calibrated on B's own history.
        #expect(await Self.eventually { exchangeB.currentVersion == 1 })
        let adopted = try #require(b.detector.model)
        #expect(ModelFile.encode(adopted) == published.publication.model)
        #expect(ModelFile.encode(try ModelFile.load(path: dirB.file("model.ipsm"))) == published.publication.model)
        #expect(b.detector.calibration != nil)
        #expect(try b.store.positions()["fleet:model"] == "1")
    }

    @Test func whenTheTrainerGoesAnotherTakesTheLockAndTrains() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let dirA = TemporaryDirectory(), dirB = TemporaryDirectory()
        defer { dirA.remove(); dirB.remove() }
        // A holds the lock but has too few logins for a first model; B has enough.
        let a = try Self.agent(dirA, logins: 20), b = try Self.agent(dirB)
        let (exchangeA, storeA) = try Self.exchange(fleet, a, host: "host-a", trainer: true)
        let runningA = Self.start(exchangeA, storeA)
        #expect(await Self.eventually { exchangeA.isTrainer })
        let (exchangeB, storeB) = try Self.exchange(fleet, b, host: "host-b", trainer: true)
        let runningB = Self.start(exchangeB, storeB)
        defer { runningB.cancel() }

        // B may train, but not while A holds the lock.
        try await Task.sleep(nanoseconds: 1_000_000_000)
        b.retrainer.step()
        #expect(!exchangeB.isTrainer && b.detector.model == nil)

        // A goes (its lock's connection closes): B takes the lock, trains and publishes.
        runningA.cancel()
        _ = await runningA.value
        #expect(!exchangeA.isTrainer)
        #expect(await Self.eventually { exchangeB.isTrainer })
        b.retrainer.step()
        #expect(await Self.eventually { exchangeB.currentVersion == 1 })
        let latest = try #require(try await fleet.withStore { try await $0.latestModel() })
        #expect(latest.version == 1 && latest.publication.trainedBy == "host-b")
        #expect(latest.publication.model == ModelFile.encode(try #require(b.detector.model)))
    }

    @Test func anOlderDatabaseDoesNotTakeTheModelBack() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let agent = try Self.agent(dir)
        // This agent already runs version 5 (from before a restore of the database to a backup).
        try agent.store.save(["fleet:model": "5"])
        try await fleet.withStore { store in
            _ = try await store.publishModel(ModelPublication(
                model: ModelFile.encode(Synthetic.model()), hyperparameters: "{}", calibration: "null", metrics: "{}",
                trainedBy: "host-old", windowStart: 0, windowEnd: 1))
        }
        let (exchange, store) = try Self.exchange(fleet, agent, host: "host-c", trainer: false)
        #expect(exchange.currentVersion == 5)
        let running = Self.start(exchange, store)
        try await Task.sleep(nanoseconds: 1_500_000_000)
        running.cancel()
        _ = await running.value
        #expect(exchange.currentVersion == 5)
        #expect(agent.detector.model == nil, "version 1 is older than what this agent runs: not installed")
    }

    @Test func aPublishedVersionIsAdoptedOnItsNotificationWithoutWaitingForThePoll() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let agent = try Self.agent(dir)
        // A poll every 10 minutes: only the notification can bring the versions in time.
        let (exchange, store) = try Self.exchange(fleet, agent, host: "host-b", trainer: false, poll: 600)
        let running = Self.start(exchange, store)
        defer { running.cancel() }
        try await Task.sleep(nanoseconds: 1_000_000_000)   // listening
        let waits = try await fleet.withStore(host: "host-a") { publisher in
            var waits: [Double] = []
            for n in 1...5 {
                _ = try await publisher.publishModel(ModelPublication(
                    model: ModelFile.encode(Synthetic.model(seed: UInt64(n))), hyperparameters: "{}", calibration: "null",
                    metrics: "{}", trainedBy: "host-a", windowStart: 0, windowEnd: 1))
                let published = Date()
                #expect(await Self.eventually(seconds: 5) { exchange.currentVersion == Int64(n) })
                waits.append(Date().timeIntervalSince(published))
            }
            return waits
        }
        #expect(ModelFile.encode(try #require(agent.detector.model)) == ModelFile.encode(Synthetic.model(seed: 5)))
        print("publish to serving, s:", waits.map { Format.fixed($0, 3) }.joined(separator: " "))
    }

    @Test func aGroupWithTheExchangeStopsAtOnceWhileTheDatabaseIsUnreachable() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let agent = try Self.agent(dir)
        // A socket directory with no server in it.
        let settings = FleetSettings(user: "ipsight_agent", database: "nowhere", endpoint: .unixSocket(path: dir.path),
                                     trainer: true, hostName: "host-x")
        var logger = Logger(label: "fleet-test")
        logger.logLevel = .critical
        let store = try FleetStore(config: try FleetConfig(settings: settings), logger: logger)
        let exchange = try ModelExchange(store: store, agent: agent, settings: settings, logger: logger, pollInterval: 0.3)
        let group = ServiceGroup(configuration: .init(services: [.init(service: FleetClientService(store: store)),
                                                                 .init(service: exchange)],
                                                      gracefulShutdownSignals: [], logger: logger))
        // On the agent's lifecycle threads, as `ipsight run` runs its group: what is
        // measured is the exchange's stop, not the wait for a thread of the shared pool.
        let running = Task(executorPreference: AgentRuntime.lifecycleThreads) { try await group.run() }
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let asked = Date()
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(Date().timeIntervalSince(asked) < 3, "stopped \(Date().timeIntervalSince(asked)) s after being asked")
        #expect(exchange.currentVersion == 0 && !exchange.isTrainer)
    }
}
