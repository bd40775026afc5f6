/// Iterate averaging (Polyak–Ruppert): the model a run ends with is the mean of
/// the parameters along the run, not the last step's.
///
/// Why: with Adam at the tutorial's learning rate the parameters keep moving by
/// about one step's noise until the end, and the score of an address no user has
/// logged in from (a trip, or an attack) is mostly that noise: on the 10,000-user
/// simulation the variance of such scores within one user was 3.5 times their
/// variance between users. The mean of the iterates keeps what every step agrees
/// on and cancels what they do not. Measured there (AUC / recall at 1% FPR): last
/// iterate 0.985 / 0.428; mean over the last epoch 0.987 / 0.450; over the last
/// three 0.987 / 0.473; after the first epoch 0.988 / 0.492; over the whole run
/// 0.987 / 0.492 (its early, small parameters also shrink the scores).
///
/// Schedule: nothing in the first `burnInShare` of a run's steps, then a sample
/// every `max(1, stepsPerEpoch / samplesPerEpoch)` steps, counted back from the
/// last step so that the final parameters are always one of the samples.
public struct AveragingSchedule: Sendable, Equatable {
    public var burnInShare: Double
    public var samplesPerEpoch: Int

    public static let standard = AveragingSchedule(burnInShare: 0.2, samplesPerEpoch: 20)

    public init(burnInShare: Double, samplesPerEpoch: Int) {
        self.burnInShare = min(max(burnInShare, 0), 1)
        self.samplesPerEpoch = max(1, samplesPerEpoch)
    }

    /// Whether the parameters after `step` (1-based, of `totalSteps`) are sampled.
    public func samples(step: Int, totalSteps: Int, stepsPerEpoch: Int) -> Bool {
        let burnIn = Int(Double(totalSteps) * burnInShare)
        guard step > burnIn else { return step == totalSteps }
        let interval = max(1, stepsPerEpoch / samplesPerEpoch)
        return (totalSteps - step) % interval == 0
    }
}

/// Running sums of a model's parameters, and their mean written back.
final class IterateAverage {
    let parameters: [FloatBuffer]
    let sums: [FloatBuffer]
    private(set) var count = 0

    init(_ model: Model) {
        parameters = ModelFile.learntTensors(model).map(\.1)
        sums = parameters.map { FloatBuffer(count: $0.count) }
    }

    func add() {
        for (p, s) in zip(parameters, sums) { Kernels.add(p.pointer, s.pointer, p.count) }
        count += 1
    }

    /// Replaces the parameters by the mean of the samples.
    func writeMean() {
        guard count > 0 else { return }
        let scale = 1 / Float(count)
        for (p, s) in zip(parameters, sums) {
            let out = p.pointer, sum = s.pointer
            for i in 0..<p.count { out[i] = sum[i] * scale }
        }
    }
}
