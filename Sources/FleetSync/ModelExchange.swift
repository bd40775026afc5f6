import Agent
import Fleet
import Foundation
import IPInsights
import IPSightCore
import Logging
import ServiceLifecycle
import Synchronization

/// One model for the fleet. Every agent adopts the newest version published (the
/// store verifies its checksum), so the fleet scores with one model; among the
/// agents that may train, the one holding the trainer lock trains on its window,
/// which the fleet's caught-up logins fill, and publishes each model it installs.
/// The others do not train while it holds the lock, and one of them takes over
/// when its connection ends.
public final class ModelExchange: Service, Sendable {
    /// Where the newest version adopted or published here is kept, in the agent's
    /// store: a restart resumes from it, and a database restored from an older
    /// backup is not followed back to an older model.
    static let versionKey = "fleet:model"

    private let store: FleetStore
    private let agent: AgentRuntime
    private let hostName: String
    private let trainer: Bool
    private let logger: Logger
    private let pollInterval: Double
    private let pending = Mutex<[TrainedModel]>([])
    private let version: Atomic<Int64>
    private let holding = Atomic<Bool>(false)
    /// Raised by a NOTIFY of a newly published version.
    private let published = Flag()

    /// Takes over the agent's retrainer: until this agent holds the trainer lock it
    /// adopts models rather than trains them.
    public init(store: FleetStore, agent: AgentRuntime, settings: FleetSettings, logger: Logger,
                pollInterval: Double = 5) throws {
        self.store = store
        self.agent = agent
        hostName = settings.hostName
        trainer = settings.trainer
        self.logger = logger
        self.pollInterval = pollInterval
        version = Atomic(Int64(try agent.store.positions()[Self.versionKey] ?? "") ?? 0)
        agent.retrainer.allowTraining(false)
        agent.retrainer.onTrained { [weak self] trained in self?.pending.withLock { $0.append(trained) } }
    }

    /// The version in force here (0: none from the fleet yet).
    public var currentVersion: Int64 { version.load(ordering: .relaxed) }

    /// Whether this agent holds the trainer lock now, and so trains for the fleet.
    public var isTrainer: Bool { holding.load(ordering: .relaxed) }

    public func run() async {
        let stopping = Flag()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listen(until: stopping) }
            group.addTask { await self.exchange(until: stopping) }
            await waitForShutdown()
            // A query waiting on a database that is down ends with its task.
            stopping.set()
            group.cancelAll()
        }
    }

    private func exchange(until stopping: Flag) async {
        while !stopping.isSet && !Task.isCancelled {
            await adoptNewest()
            if trainer {
                do {
                    let held = try await store.withTrainerLock { lease in
                        await self.train(holding: lease, until: stopping)
                        return true
                    }
                    if held == nil { await pause(pollInterval, until: stopping, or: published) }
                } catch {
                    logger.warning("fleet: trainer lock: \(error)")
                    await pause(pollInterval, until: stopping, or: published)
                }
            } else {
                await pause(pollInterval, until: stopping, or: published)
            }
        }
    }

    /// A new version's notification cuts the wait short; polling remains the fallback.
    private func listen(until stopping: Flag) async {
        let published = self.published
        while !stopping.isSet && !Task.isCancelled {
            do {
                try await store.watchModels { _ in published.set() }
            } catch {
                logger.debug("fleet: \(error)")
                await pause(pollInterval, until: stopping)
            }
        }
    }

    /// While the lock is ours: this agent trains, and each model it installs is published.
    private func train(holding lease: TrainerLease, until stopping: Flag) async {
        // The newest published model first, so training warm-starts from the fleet's.
        await adoptNewest()
        pending.withLock { $0 = [] }
        agent.retrainer.allowTraining(true)
        holding.store(true, ordering: .relaxed)
        logger.notice("fleet: this agent trains the fleet's model")
        defer {
            agent.retrainer.allowTraining(false)
            holding.store(false, ordering: .relaxed)
        }
        while !stopping.isSet && !Task.isCancelled && lease.isHeld {
            for trained in pending.withLock({ queue in defer { queue = [] }; return queue }) {
                await publish(trained, on: lease)
            }
            await pause(1, until: stopping)
        }
        if !lease.isHeld { logger.warning("fleet: the trainer lock was lost; another agent may train now") }
    }

    private func publish(_ trained: TrainedModel, on lease: TrainerLease) async {
        let publication = ModelPublication(
            model: ModelFile.encode(trained.model), hyperparameters: JSONWriter.string(Self.json(trained.model.hyperparameters)),
            calibration: JSONWriter.string(calibrationJSON()),
            metrics: JSONWriter.string(.object([("validation_auc", .number(trained.validationAUC)),
                                                ("logins", .number(Double(trained.logins)))])),
            trainedBy: hostName, windowStart: trained.windowStart, windowEnd: trained.windowEnd)
        do {
            let published = try await lease.publishModel(publication)
            try remember(published)
            logger.notice("fleet: published model version \(published)")
        } catch {
            logger.error("fleet: publishing the model failed: \(error); it is in use here and the next one is published")
        }
    }

    /// Installs the newest published version if it is newer than the one in force here.
    private func adoptNewest() async {
        do {
            let store = self.store
            // Bounded: the pool waits for as long as the database is away. The
            // number first: the bytes are fetched only for a version newer than ours.
            guard let newest = try await withDeadline(10, { try await store.latestModelVersion() }) else { return }
            let current = version.load(ordering: .relaxed)
            if newest < current {
                logger.warning("fleet: the database's newest model is version \(newest), older than \(current) in use here (restored from a backup?); keeping ours")
                return
            }
            guard newest > current, let latest = try await withDeadline(10, { try await store.latestModel() }),
                  latest.version > current else { return }
            let model = try latest.publication.model.withUnsafeBytes { bytes throws(ModelFileError) in
                try ModelFile.decode(bytes, source: "fleet model \(latest.version)")
            }
            let agent = self.agent
            try await onOwnThread("ipsight-adopt") {
                try agent.retrainer.adopt(model, note: "fleet model version \(latest.version) from \(latest.publication.trainedBy) installed")
            }
            try remember(latest.version)
        } catch {
            logger.warning("fleet: checking for a newer model: \(error)")
        }
    }

    private func remember(_ published: Int64) throws {
        version.store(published, ordering: .relaxed)
        try agent.store.save([Self.versionKey: String(published)])
    }

    private func calibrationJSON() -> JSONValue {
        guard let calibration = agent.detector.calibration else { return .null }
        return .object([("typical_dot_product", .number(Double(calibration.typicalDotProduct))),
                        ("routed_networks", calibration.networks.map { .number(Double($0.networks.count)) } ?? .null)])
    }

    static func json(_ h: Hyperparameters) -> JSONValue {
        .object([("num_entity_vectors", .number(Double(h.numEntityVectors))), ("vector_dim", .number(Double(h.vectorDim))),
                 ("epochs", .number(Double(h.epochs))), ("learning_rate", .number(h.learningRate)),
                 ("mini_batch_size", .number(Double(h.miniBatchSize))), ("num_ip_encoder_layers", .number(Double(h.numIPEncoderLayers))),
                 ("random_negative_sampling_rate", .number(Double(h.randomNegativeSamplingRate))),
                 ("shuffled_negative_sampling_rate", .number(Double(h.shuffledNegativeSamplingRate))),
                 ("weight_decay", .number(h.weightDecay))])
    }
}

/// A flag loops look at between steps: set once (shutdown), or set and taken
/// (a notification).
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
    /// Whether it was set since the last look, clearing it.
    func take() -> Bool { value.exchange(false, ordering: .relaxed) }
}

/// Sleeps up to `seconds`, waking early once `flag` or `wake` is set.
func pause(_ seconds: Double, until flag: Flag, or wake: Flag? = nil) async {
    var left = seconds
    while left > 0 && !flag.isSet && !Task.isCancelled {
        if wake?.take() == true { return }
        try? await Task.sleep(nanoseconds: UInt64(min(left, 0.05) * 1e9))
        left -= 0.05
    }
}
