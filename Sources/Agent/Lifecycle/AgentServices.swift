import AlertSinks
import Foundation
import IPSightCore
import Logging
import ServiceLifecycle
import UnixSignals

/// The agent's parts as the services of one `ServiceGroup`: alert delivery, the
/// retrainer and the pipeline, started in this order and stopped in reverse (the
/// pipeline saves what it read, the retrainer stops, delivery drains). `ipsight
/// run` puts the API before them and the reload signal after.
extension AgentRuntime {
    public func services(retrain: Bool) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: DeliveryService(router: router))]
        if retrain { services.append(.init(service: RetrainerService(retrainer: retrainer))) }
        // The pipeline ends the group when it ends: every source read (a one-off run),
        // stop(), or a failure, which the group then throws.
        services.append(.init(service: PipelineService(agent: self, retrain: retrain),
                              successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        return services
    }

    /// The agent's services until every source ends (sources that are not
    /// followed), `stop()`, a failure or one of `signals`. `ipsight run` puts the
    /// API `before` them and the reload signal `after`.
    public func run(retrain: Bool = true, before: [ServiceGroupConfiguration.ServiceConfiguration] = [],
                    after: [ServiceGroupConfiguration.ServiceConfiguration] = [], signals: [UnixSignal] = []) async throws {
        // The group's own messages (services starting and ending) only when they matter.
        var quiet = logger
        quiet.logLevel = .warning
        let group = ServiceGroup(configuration: .init(services: before + services(retrain: retrain) + after,
                                                      gracefulShutdownSignals: signals, logger: quiet))
        try await withTaskExecutorPreference(AgentRuntime.lifecycleThreads) { try await group.run() }
    }

    /// The services' own threads: their work is short (what blocks runs on a thread
    /// of its own), but it must not wait behind whatever else holds the shared pool.
    public static let lifecycleThreads = DedicatedThreads(count: 2, name: "ipsight-lifecycle")
}

/// Sources → rules → detector → alerts, on a thread of its own (the loop blocks
/// on the sources' queue); graceful shutdown asks it to stop after the batch in hand.
struct PipelineService: Service {
    let agent: AgentRuntime
    let retrain: Bool

    func run() async throws {
        let agent = self.agent
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                // The group handles signals from before this runs: one that came earlier is met here.
                if ProcessSignals.terminating.load(ordering: .relaxed) { return }
                let finished = try await onOwnThread("ipsight-pipeline") { try agent.runPipeline() }
                // Every source read to its end (a one-off run over files): bring the model
                // up to date with what was read, as the background thread would have.
                if finished && retrain { try await onOwnThread("ipsight-retrain") { agent.retrainer.step() } }
            } onCancel: {
                agent.stop()
            }
        } onGracefulShutdown: {
            agent.stop()
        }
    }
}

/// Keeps the model and its calibration current, on the retrainer's own thread.
struct RetrainerService: Service {
    let retrainer: Retrainer

    func run() async {
        retrainer.start()
        await waitForShutdown()
        retrainer.stop()
    }
}

/// Remote sinks get up to two seconds at shutdown to empty the spool; then
/// deliveries still in flight are cancelled (a hanging receiver does not hold
/// up the exit) and what is left is delivered by the next start.
struct DeliveryService: Service {
    let router: any AlertRouting

    func run() async throws {
        await waitForShutdown()
        let router = self.router
        try await onOwnThread("ipsight-drain") {
            router.drain(seconds: 2)
            (router as? FanOutAlertRouter)?.shutdown()
        }
    }
}

/// SIGHUP: the pipeline reloads the config between two batches.
public struct ReloadOnHangup: Service {
    let agent: AgentRuntime

    public init(agent: AgentRuntime) { self.agent = agent }

    public func run() async {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let agent = self.agent
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in hangups { agent.requestReload() } }
            await waitForShutdown()
            group.cancelAll()
        }
    }
}

/// Blocking work awaited on a thread of its own: the pipeline and a delivery
/// drain block for seconds, which the concurrency pool's few threads must not.
public func onOwnThread<T: Sendable>(_ name: String, _ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }
}
