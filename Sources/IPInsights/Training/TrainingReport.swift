import IPSightCore

/// What the trainer reports while it runs.
public enum TrainingEvent: Sendable {
    /// After every batch: how far the epoch is.
    case progress(epoch: Int, batch: Int, batches: Int)
    /// Every `batch_metrics_publish_interval` batches, like MXNet's Speedometer.
    case speedometer(epoch: Int, batch: Int, samplesPerSecond: Double, pairsPerSecond: Double, loss: Double, accuracy: Double)
    case epochEnd(EpochReport)
}

public struct EpochReport: Sendable {
    public var epoch: Int
    public var loss: Double
    public var accuracy: Double
    public var pairsPerSecond: Double
    public var samplesPerSecond: Double
    public var seconds: Double
    public var validationAUC: Double?
}

/// The phases of a training step, as `ipsight bench` reports them.
public enum TrainingPhase: String, CaseIterable, Sendable {
    case gather = "sample+gather", layersForward = "layers forward", scores = "scores+loss"
    case layersBackward = "layers backward", group = "group rows", adam = "sum+adam"
}

/// Adds the time since the last lap to a phase's total.
struct PhaseTimer {
    private var mark = Clock.now

    mutating func lap(_ phase: TrainingPhase, into seconds: inout [TrainingPhase: Double]) {
        let now = Clock.now
        seconds[phase, default: 0] += now - mark
        mark = now
    }
}
