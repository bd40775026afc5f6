import Detection
import IPSightCore
import Foundation
import IPInsights
import Logging
import SQLiteStore
import Synchronization

/// Keeps the model and its calibration current, on a thread of its own:
/// trains a first model once enough logins are stored, then every interval
/// warm-starts from the current model on the retention window, validates on the
/// most recent slice, and swaps the new model in (file and memory) only if it
/// is not worse. Scoring carries on with the old model meanwhile.
public final class Retrainer: @unchecked Sendable {
    private let detector: Detector
    private let logger: Logger
    private let config: Mutex<AgentConfig>
    private let stopped = Atomic<Bool>(false)
    private let wake = NSCondition()
    /// One step at a time, whether from the thread or a caller.
    private let stepping = NSLock()
    private var thread: Thread?
    private var lastTraining: Double
    private let stats: AgentStats?
    /// Set by `retrainNow`, taken by the next step.
    private let forced = Atomic<Bool>(false)
    /// How often the thread looks for work (a first model, a due retraining).
    public var checkInterval: Double
    /// Whether this agent trains: in a fleet only the agent holding the trainer lock
    /// does, and the others adopt what it publishes.
    private let trainingAllowed = Atomic<Bool>(true)
    private let trainedHandler = Mutex<(@Sendable (TrainedModel) -> Void)?>(nil)

    public init(config: AgentConfig, detector: Detector, logger: Logger, stats: AgentStats? = nil, checkInterval: Double = 60) {
        self.stats = stats
        self.config = Mutex(config)
        self.detector = detector
        self.logger = logger
        self.checkInterval = checkInterval
        lastTraining = Clock.now
    }

    public func reconfigure(_ config: AgentConfig) { self.config.withLock { $0 = config } }

    public func start() {
        let thread = Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                step()
                wake.lock()
                if !stopped.load(ordering: .relaxed) { _ = wake.wait(until: Date(timeIntervalSinceNow: checkInterval)) }
                wake.unlock()
            }
        }
        thread.name = "ipsight-retrain"
        thread.stackSize = 8 << 20
        self.thread = thread
        thread.start()
    }

    /// Asks the thread to stop; a training run in progress finishes first, but its result is not installed.
    public func stop() {
        stopped.store(true, ordering: .relaxed)
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }

    /// Makes a retraining due now (`ipsight retrain`, `POST /v1/retrain`) and wakes the thread.
    public func retrainNow() {
        forced.store(true, ordering: .relaxed)
        wakeUp()
    }

    /// After a reload that changed the routed-network table: the risk weights are
    /// fitted again with it, by the thread when it runs (scoring keeps the old
    /// calibration and table meanwhile), else here.
    public func recalibrate() {
        if thread != nil && !stopped.load(ordering: .relaxed) {
            wakeUp()
            return
        }
        stepping.lock()
        defer { stepping.unlock() }
        let config = self.config.withLock { $0 }
        guard let model = detector.model, calibrationIsStale(config) else { return }
        do {
            let observations = try ObservationStore(path: config.databasePath)
                .observations(since: Clock.wall - config.retention, learnedOnly: true)
            calibrate(model, observations, config)
        } catch {
            logger.error("recalibrate: \(error)")
        }
    }

    /// Lets this agent train (the default), or not: calibration stays local either way.
    public func allowTraining(_ allowed: Bool) {
        trainingAllowed.store(allowed, ordering: .relaxed)
        if allowed { wakeUp() }
    }

    /// Called on the retrainer's thread after each model trained here is installed.
    public func onTrained(_ handler: @escaping @Sendable (TrainedModel) -> Void) {
        trainedHandler.withLock { $0 = handler }
    }

    /// Installs a model trained elsewhere (a fleet's trainer): saved, calibrated on
    /// this agent's own history and swapped in, as a model trained here would be.
    public func adopt(_ model: Model, note: String) throws(SQLiteError) {
        stepping.lock()
        defer { stepping.unlock() }
        let config = self.config.withLock { $0 }
        let observations = try ObservationStore(path: config.databasePath)
            .observations(since: Clock.wall - config.retention, learnedOnly: true)
        // The entities it knows: those of the window it was trained on, which this
        // agent's history holds too once the fleet's logins are caught up.
        let entities = Set(EntityKeys.pairs(observations, policy: config.policy).entityHashes)
        install(model, entities: entities, observations, config, note: note)
        lastTraining = Clock.now
    }

    private func wakeUp() {
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }

    /// Whether the calibration in force was fitted with another routed-network
    /// table than the config names (or with one when it names none).
    private func calibrationIsStale(_ config: AgentConfig) -> Bool {
        detector.calibration.map { $0.networks !== config.networks } ?? false
    }

    /// Fits the current model's calibration on `observations` and installs it.
    private func calibrate(_ model: Model, _ observations: [Observation], _ config: AgentConfig) {
        guard let calibration = Calibration.fit(model: model, observations: observations, policy: config.policy, threads: 1) else { return }
        detector.install(model: model, calibration: calibration)
        let table = config.networks.map { " with \($0.networks.count) routed networks from \($0.path)" } ?? ""
        logger.info("risk calibrated on \(observations.count) logins\(table)")
    }

    /// One round of work: whatever is due now. Public so that tests and the
    /// first start can run it synchronously.
    public func step() {
        stepping.lock()
        defer { stepping.unlock() }
        let config = self.config.withLock { $0 }
        // Nothing due: do not read the window at all.
        let force = forced.exchange(false, ordering: .relaxed)
        let due = force || Clock.now - lastTraining >= config.retrainInterval
        let stale = calibrationIsStale(config)
        if detector.model != nil && detector.calibration != nil && !due && !stale { return }
        let observations: [Observation]
        do {
            let store = try ObservationStore(path: config.databasePath)
            observations = try store.observations(since: Clock.wall - config.retention, learnedOnly: true)
        } catch {
            logger.error("retrain: \(error)")
            stats?.recordRetrain(.failed)
            return
        }
        let threads = 1
        let training = trainingAllowed.load(ordering: .relaxed)
        guard let current = detector.model else {
            guard training, observations.count >= config.bootstrapMinLogins else { return }
            let (train, validation) = split(observations, config)
            logger.notice("training a first model on \(train.count) logins")
            let model = ModelTraining.train(train, seed: UInt64(observations.count), threads: threads)
            let auc = Evaluation.discriminatorAUC(model: model, pairs: validation, threads: threads)
            if install(model, entities: Set(train.entityHashes), observations, config,
                       note: "first model: validation AUC \(Format.fixed(auc, 4))") {
                trained(model, observations, validationAUC: auc)
            }
            lastTraining = Clock.now
            return
        }
        if detector.calibration == nil || stale { calibrate(current, observations, config) }
        guard training, due, observations.count >= config.bootstrapMinLogins else { return }
        lastTraining = Clock.now
        let (train, validation) = split(observations, config)
        let candidate = ModelTraining.warmStart(from: current, on: train, seed: UInt64(observations.count), threads: threads)
        let verdict = ModelTraining.accept(candidate: candidate, current: current, validation: validation, threads: threads)
        let aucs = "validation AUC \(Format.fixed(verdict.candidateAUC, 4)) against \(Format.fixed(verdict.currentAUC, 4))"
        if verdict.accepted {
            if install(candidate, entities: Set(train.entityHashes), observations, config,
                       note: "retrained model installed: \(aucs)") {
                trained(candidate, observations, validationAUC: verdict.candidateAUC)
            }
        } else {
            logger.warning("retrained model kept out: \(aucs)")
            stats?.recordRetrain(.keptOut)
        }
    }

    private func trained(_ model: Model, _ observations: [Observation], validationAUC: Double) {
        guard let handler = trainedHandler.withLock({ $0 }) else { return }
        handler(TrainedModel(model: model, windowStart: observations.first?.time ?? 0, windowEnd: observations.last?.time ?? 0,
                             logins: observations.count, validationAUC: validationAUC))
    }

    /// Saves the model atomically, then swaps it and its calibration in; false if
    /// it was not (stopping, or the file could not be written).
    @discardableResult
    private func install(_ model: Model, entities: Set<UInt64>, _ observations: [Observation], _ config: AgentConfig,
                         note: String) -> Bool {
        guard !stopped.load(ordering: .relaxed) else { return false }
        do {
            try ModelFile.save(model, to: config.resolvedModelPath)
            try ObservationStore(path: config.databasePath).replaceModelEntities(entities)
        } catch {
            logger.error("cannot save the model: \(error)")
            stats?.recordRetrain(.failed)
            return false
        }
        let calibration = Calibration.fit(model: model, observations: observations, policy: config.policy, threads: 1)
        detector.install(model: model, calibration: calibration, entities: entities)
        stats?.recordRetrain(.installed)
        logger.notice("\(note)")
        return true
    }

    /// Older logins to train on, the most recent share to validate on.
    private func split(_ observations: [Observation], _ config: AgentConfig) -> (TrainingPairs, TrainingPairs) {
        let held = max(1, Int(Double(observations.count) * config.validationShare))
        let cut = observations.count - held
        return (EntityKeys.pairs(observations[..<cut], policy: config.policy), EntityKeys.pairs(observations[cut...], policy: config.policy))
    }
}

/// A model this agent trained and installed, with what it was trained on.
public struct TrainedModel: Sendable {
    public var model: Model
    /// Times of the first and last login of the window (training and validation).
    public var windowStart: Double
    public var windowEnd: Double
    public var logins: Int
    /// On the window's most recent share, which training did not see.
    public var validationAUC: Double
}
