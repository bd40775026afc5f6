import Dispatch
import Fleet
import FleetSync
import Foundation
import IPSightCore
import LogSources
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport
@testable import Agent

/// An agent of a test fleet: its own state directory and host name, fed from a
/// followed `MemoryLogSource`, run on its lifecycle threads as `ipsight run` runs
/// it, with its fleet sync in its services (or started and stopped on its own).
final class FleetAgent: @unchecked Sendable {
    let dir: TemporaryDirectory
    let source = MemoryLogSource(follow: true)
    let alerts = CollectingAlertRouter()
    let agent: AgentRuntime
    let fleetConfig: FleetConfig
    let options: FleetSyncService.Options
    private let done = DispatchSemaphore(value: 0)
    private let failure = Mutex<(any Error)?>(nil)
    private let appended = Atomic<Int>(0)
    private let sync = Mutex<Task<Void, any Error>?>(nil)

    var host: String { fleetConfig.settings.hostName }

    /// With `reopening`, the agent starts on an earlier one's state directory (a restart).
    init(_ fleet: TestFleet, host: String, role: String, options: FleetSyncService.Options = FleetSyncService.Options(),
         reopening earlier: FleetAgent? = nil) throws {
        dir = earlier?.dir ?? TemporaryDirectory()
        removesDirectory = earlier == nil
        earlier?.removesDirectory = false
        var config = AgentConfig()
        config.stateDirectory = dir.path
        config.rulesDirectory = PackagePaths.root + "/rules"
        config.journal = false
        config.files = []
        config.follow = true
        config.retention = 3650 * 86_400
        config.coldStartMinLogins = 5
        config.apiSocket = dir.file("api.sock")
        config.fleet = fleet.settings(user: role, host: host, trainer: false)
        fleetConfig = try FleetConfig(settings: config.fleet!)
        self.options = options
        let source = self.source
        agent = try AgentRuntime(config: config, configPath: nil, router: alerts, logger: .discarding,
                                 sources: { _ in [(key: "journal", source: source)] })
    }

    var syncService: FleetSyncService {
        var logger = Logger(label: "fleet-sync-test")
        logger.logLevel = .error
        return FleetSyncService(agent: agent, config: fleetConfig, options: options, logger: logger)
    }

    /// Runs the agent; with `withSync`, its fleet sync is one of its services.
    func start(withSync: Bool = true) {
        let agent = self.agent
        let after: [ServiceGroupConfiguration.ServiceConfiguration] = withSync ? [.init(service: syncService)] : []
        Task(executorPreference: AgentRuntime.lifecycleThreads) {
            do { try await agent.run(retrain: false, after: after) } catch { self.failure.withLock { $0 = error } }
            self.done.signal()
        }
    }

    /// Stops the agent (and its sync) and waits for it, on a thread of its own: a
    /// test blocking one of the few shared-pool threads per agent it stops would
    /// starve the libraries that finish their work there; throws its error.
    func stop() async throws {
        agent.stop()
        let done = self.done
        guard try await onOwnThread("fleet-test-stop", { done.wait(timeout: .now() + 30) == .success }) else {
            throw SupportError("the agent did not stop within 30 s")
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// A sync run on its own, beside an agent started without one.
    func startSync() {
        let service = syncService
        sync.withLock { $0 = Task(executorPreference: AgentRuntime.lifecycleThreads) { try await service.run() } }
    }

    func stopSync() async throws {
        guard let task = sync.withLock({ $0.take() }) else { return }
        task.cancel()
        try await task.value
    }

    /// Appends successful sshd logins to the agent's journal; returns their (user, address).
    @discardableResult
    func login(_ logins: [(user: String, ip: String)]) -> [(user: String, ip: String)] {
        append(logins.map { "Accepted publickey for \($0.user) from \($0.ip) port 50022 ssh2: ED25519 SHA256:abc" })
        return logins
    }

    /// Appends failed sshd password attempts.
    func fail(_ attempts: [(user: String, ip: String)]) {
        append(attempts.map { "Failed password for \($0.user) from \($0.ip) port 50022 ssh2" })
    }

    private func append(_ messages: [String]) {
        let first = appended.add(messages.count, ordering: .relaxed).newValue - messages.count
        source.append(messages.enumerated().map { k, message in Self.entry(first + k + 1, message: message) })
    }

    /// The credential-stuffing alerts this agent raised, by (user, address).
    var stuffingAlerts: [String] {
        alerts.received.filter { $0.reasons.contains { $0.0 == "credential stuffing" } }.map { "\($0.user) \($0.ip)" }
    }

    /// Whether the agent knows `user` from `ip`: its decision no longer says "first
    /// seen: address new for this entity" (the memory the pipeline decides with).
    func knows(user: String, ip: String) -> Bool {
        let event = LoginEvent(time: nil, host: nil, service: "sshd", outcome: .success, user: user, ip: ip,
                               port: nil, method: nil, rule: "test")
        guard let verdict = agent.detector.decide(event) else { return false }
        return !verdict.reasons.contains { $0.0 == "first seen" && $0.1.hasSuffix("new for this entity") }
    }

    /// The agent's store through a connection of the test's own (the pipeline's
    /// connection is its thread's alone).
    func localStore() throws -> ObservationStore { try ObservationStore(path: agent.config.databasePath) }

    /// This host's own logins in its store.
    func ownLogins() throws -> Int { try localStore().ownLearnedCount(after: 0) }

    static func entry(_ n: Int, message: String) -> LogRecord {
        LogRecord(time: Clock.wall, host: "host", identifier: "sshd", pid: 123, message: message,
                  trusted: TrustedFields(systemdUnit: "ssh.service", comm: "sshd", uid: "0"),
                  position: .journal(cursor: "s=1;i=\(n)"))
    }

    /// The last agent on a directory removes it.
    private var removesDirectory: Bool

    deinit { if removesDirectory { dir.remove() } }
}
