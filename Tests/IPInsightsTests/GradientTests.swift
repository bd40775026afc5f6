import IPSightCore
import Testing
@testable import IPInsights

/// The analytic gradients of the trainer against central finite differences of
/// the batch loss, for every kind of parameter: entity rows, prefix and byte rows
/// of the IP table, and the dense layers' weights and biases.
@Suite struct GradientTests {
    func makeTrainer(layers: Int) throws -> (Trainer, TrainingPairs) {
        var hp = Hyperparameters(numEntityVectors: 16, vectorDim: 8)
        hp.numIPEncoderLayers = layers
        hp.miniBatchSize = 4
        hp.randomNegativeSamplingRate = 2
        hp.shuffledNegativeSamplingRate = 1
        let model = Model(hyperparameters: try hp.validated(), layout: IPEncoderLayout(buckets: 64))
        model.initialise(seed: 3)
        // Larger weights than the initialisation so that tanh is well off its linear part.
        for i in 0..<model.entityTable.count { model.entityTable[i] *= 3 }
        for i in 0..<model.ipTable.count { model.ipTable[i] *= 4 }
        var pairs = TrainingPairs()
        for (e, ip) in [("alice", "198.51.100.7"), ("bob", "203.0.113.9"), ("carol", "2001:db8:1::5"), ("alice", "198.51.100.200")] {
            pairs.append(entity: e, ip: try #require(IPAddress(ip)))
        }
        return (Trainer(model: model, seed: 9, threads: 1), pairs)
    }

    func check(layers: Int) throws {
        let (trainer, pairs) = try makeTrainer(layers: layers)
        let model = trainer.model
        let indices: [Int32] = [0, 1, 2, 3]
        let state = trainer.randomState
        let analytic = trainer.gradients(pairs, indices: indices)
        func loss() -> Double {
            trainer.randomState = state
            return trainer.gradients(pairs, indices: indices).loss
        }
        func numeric(_ buffer: FloatBuffer, _ index: Int) -> Double {
            let h: Float = 1e-2
            let saved = buffer[index]
            buffer[index] = saved + h
            let up = loss()
            buffer[index] = saved - h
            let down = loss()
            buffer[index] = saved
            return (up - down) / Double(2 * h)
        }
        var checked = 0
        func compare(_ numericValue: Double, _ analyticValue: Float, _ what: String) {
            let tolerance = 2e-4 + 2e-2 * abs(numericValue)
            #expect(abs(numericValue - Double(analyticValue)) <= tolerance,
                    "\(what): numeric \(numericValue) vs analytic \(analyticValue)")
            checked += 1
        }
        let d = model.dimension
        #expect(analytic.entityRows.count == 3, "three distinct entities in the batch")
        for (row, grad) in analytic.entityRows {
            for j in [0, 3, 7] { compare(numeric(model.entityTable, row * d + j), grad[j], "entity row \(row)[\(j)]") }
        }
        // Prefix rows (below `buckets`) and byte rows (above) both get checked.
        let ipRows = analytic.ipRows.keys.sorted()
        #expect(ipRows.contains { $0 < model.layout.buckets } && ipRows.contains { $0 >= model.layout.buckets })
        for row in ipRows.prefix(6) + ipRows.suffix(6) {
            for j in [1, 6] { compare(numeric(model.ipTable, row * d + j), analytic.ipRows[row]![j], "ip row \(row)[\(j)]") }
        }
        for l in 0..<layers {
            for index in [0, 9, 27, 63] { compare(numeric(model.weights[l], index), analytic.weights[l][index], "w\(l)[\(index)]") }
            for index in [0, 5] { compare(numeric(model.biases[l], index), analytic.biases[l][index], "b\(l)[\(index)]") }
        }
        #expect(checked >= 30)
        // A parameter the batch does not touch has no gradient: perturbing it leaves the loss alone.
        let untouched = (0..<model.layout.rows).first { analytic.ipRows[$0] == nil }!
        #expect(abs(numeric(model.ipTable, untouched * d)) < 1e-9)
    }

    @Test func gradientsWithoutEncoderLayers() throws { try check(layers: 0) }
    @Test func gradientsWithOneLayer() throws { try check(layers: 1) }
    @Test func gradientsWithThreeLayers() throws { try check(layers: 3) }

    @Test func logisticLossIsStableForExtremeScores() {
        for s: Float in [-200, -30, -1, 0, 1, 30, 200] {
            let (lp, gp) = TrainingStep.logistic(s, true)
            let (ln, gn) = TrainingStep.logistic(s, false)
            #expect(lp.isFinite && ln.isFinite && gp.isFinite && gn.isFinite)
            #expect(gp <= 0 && gn >= 0)
            #expect(abs(Double(gp - gn) + 1) < 1e-6, "d/ds of positive minus negative loss is -1")
        }
        #expect(abs(TrainingStep.logistic(0, true).0 - 0.693147) < 1e-5)
    }
}
