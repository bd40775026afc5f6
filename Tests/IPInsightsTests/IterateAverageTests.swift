import IPSightCore
import Testing
@testable import IPInsights

/// Iterate averaging: which steps are sampled, and that a run ends with the mean of
/// exactly those iterates.
@Suite struct IterateAverageTests {
    @Test func scheduleSkipsTheBurnInAndAlwaysTakesTheLastStep() {
        let schedule = AveragingSchedule(burnInShare: 0.2, samplesPerEpoch: 4)
        // 5 epochs of 20 steps: burn-in 20 steps, then every 5th step counted from step 100.
        let sampled = (1...100).filter { schedule.samples(step: $0, totalSteps: 100, stepsPerEpoch: 20) }
        #expect(sampled == Array(stride(from: 25, through: 100, by: 5)))

        // An epoch shorter than the samples asked for: every step after the burn-in.
        let dense = (1...10).filter { schedule.samples(step: $0, totalSteps: 10, stepsPerEpoch: 2) }
        #expect(dense == [3, 4, 5, 6, 7, 8, 9, 10])

        // All burn-in, or a single step: the last step alone.
        let none = AveragingSchedule(burnInShare: 1, samplesPerEpoch: 4)
        #expect((1...50).filter { none.samples(step: $0, totalSteps: 50, stepsPerEpoch: 10) } == [50])
        #expect(schedule.samples(step: 1, totalSteps: 1, stepsPerEpoch: 1))
    }

    static func data() throws -> TrainingPairs {
        var rng = SeededRandom(seed: 4)
        var pairs = TrainingPairs()
        // 40 entities, each logging in from its own /24 and now and then from anywhere.
        for _ in 0..<3_000 {
            let user = rng.below(40)
            let ip: IPAddress = rng.below(10) == 0
                ? IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()))
                : IPAddress(ipv4: UInt32(10 << 24 | user << 8 | rng.below(256)))
            pairs.append(entity: "user\(user)", ip: ip)
        }
        return pairs
    }

    /// A small model for training tests (also used by other suites).
    static func model(epochs: Int = 3, miniBatchSize: Int = 100, randomNegatives: Int = 2,
                      seed: UInt64 = 2, activityPrior: Bool = true) throws -> Model {
        var hp = Hyperparameters(numEntityVectors: 64, vectorDim: 16)
        hp.epochs = epochs
        hp.miniBatchSize = miniBatchSize
        hp.randomNegativeSamplingRate = randomNegatives
        let model = Model(hyperparameters: try hp.validated(), layout: IPEncoderLayout(buckets: 256),
                          activityPrior: activityPrior)
        model.initialise(seed: seed)
        return model
    }

    static func parameters(_ model: Model) -> [[Float]] {
        ModelFile.tensorList(model).map(\.1.array)
    }

    @Test func aRunEndsWithTheMeanOfTheSampledIterates() throws {
        let pairs = try Self.data()
        let schedule = AveragingSchedule(burnInShare: 0.2, samplesPerEpoch: 6)
        let batches = 30, total = 3 * batches

        // The last-iterate run, summing its parameters at the scheduled steps by hand.
        // (Without the activity prior: it is written after the run, not averaged.)
        let plain = try Self.model(activityPrior: false)
        let plainTrainer = Trainer(model: plain, seed: 11, threads: 1)
        plainTrainer.averaging = nil
        var sums: [[Double]] = Self.parameters(plain).map { [Double](repeating: 0, count: $0.count) }
        var sampled = 0
        _ = plainTrainer.train(pairs) { event in
            guard case let .progress(epoch, batch, count) = event else { return }
            #expect(count == batches)
            let step = epoch * batches + batch
            guard schedule.samples(step: step, totalSteps: total, stepsPerEpoch: batches) else { return }
            for (k, values) in Self.parameters(plain).enumerated() {
                for i in values.indices { sums[k][i] += Double(values[i]) }
            }
            sampled += 1
        }
        #expect(sampled == 15, "every 5th step after the first 18")

        // The same run with averaging: same samples (averaging draws no random numbers).
        let averaged = try Self.model(activityPrior: false)
        let trainer = Trainer(model: averaged, seed: 11, threads: 1)
        trainer.averaging = schedule
        _ = trainer.train(pairs)

        var worst: Double = 0, moved: Double = 0
        for (k, values) in Self.parameters(averaged).enumerated() {
            let last = Self.parameters(plain)[k]
            for i in values.indices {
                let mean = sums[k][i] / Double(sampled)
                worst = max(worst, abs(Double(values[i]) - mean) / max(1, abs(mean)))
                moved = max(moved, abs(Double(values[i]) - Double(last[i])))
            }
        }
        #expect(worst < 1e-5, "averaged parameters are the mean of the samples (worst relative error \(worst))")
        #expect(moved > 1e-3, "and differ from the last iterate (largest difference \(moved))")
    }

    @Test func averagingKeepsWhatTheModelLearnt() throws {
        let pairs = try Self.data()
        func discrimination(_ schedule: AveragingSchedule?) throws -> Double {
            let model = try Self.model()
            let trainer = Trainer(model: model, seed: 3, threads: 1)
            trainer.averaging = schedule
            _ = trainer.train(pairs)
            return Evaluation.discriminatorAUC(model: model, pairs: pairs)
        }
        let last = try discrimination(nil), mean = try discrimination(.standard)
        #expect(last > 0.8 && mean > 0.8, "both runs learn the entities' networks (last \(last), mean \(mean))")
    }
}
