import IPSightCore

/// Trains a model by discriminating real pairs from negative samples: for every
/// positive (entity, ip), R pairs of the entity with random addresses of the same
/// family and S pairs of the entity with another pair's address from the same
/// mini-batch. Cross entropy on the dot product, Adam; the embedding tables get
/// lazy updates (only the rows a batch touches, with weight decay on those rows),
/// the dense layers ordinary ones. The model a run ends with is the mean of its
/// iterates after a burn-in (`averaging`). One batch is `trainBatch`, which runs
/// the step functions of `TrainingStep` over the buffers held here.
public final class Trainer: @unchecked Sendable {
    public let model: Model
    let hp: Hyperparameters
    let d: Int
    let threads: Int
    var rng: SeededRandom
    var step = 0
    /// Seconds spent in each phase of the training steps so far, for `ipsight bench`.
    public private(set) var phaseSeconds: [TrainingPhase: Double] = [:]

    // Adam moments, per parameter tensor.
    let entityMoments: AdamMoments, ipMoments: AdamMoments
    let weightMoments: [AdamMoments], biasMoments: [AdamMoments]
    let grads: ParameterGradients
    let buffers: BatchBuffers

    /// How the run's iterates are averaged into the model it ends with; nil keeps
    /// the last step's parameters, as SageMaker does. See `AveragingSchedule`.
    public var averaging: AveragingSchedule? = .standard

    /// Where random negatives' addresses come from.
    public var randomNegatives: RandomNegatives = .uniform

    public init(model: Model, seed: UInt64, threads: Int = 2) {
        self.model = model
        hp = model.hyperparameters
        d = model.dimension
        self.threads = max(1, threads)
        rng = SeededRandom(seed: seed)
        entityMoments = AdamMoments(count: model.entityTable.count)
        ipMoments = AdamMoments(count: model.ipTable.count)
        weightMoments = model.weights.map { AdamMoments(count: $0.count) }
        biasMoments = model.biases.map { AdamMoments(count: $0.count) }
        grads = ParameterGradients(model)
        buffers = BatchBuffers(hp, dimension: d)
    }

    /// Runs `hyperparameters.epochs` passes over `pairs`, reporting as it goes; with
    /// validation pairs, each epoch ends with `validation:discriminator_auc`.
    public func train(_ pairs: TrainingPairs, validation: TrainingPairs? = nil,
                      report: (TrainingEvent) -> Void = { _ in }) -> [EpochReport] {
        var reports: [EpochReport] = []
        guard pairs.count > 0 else { return reports }
        var order = [Int32](0..<Int32(pairs.count))
        let batches = (pairs.count + hp.miniBatchSize - 1) / hp.miniBatchSize
        let totalSteps = batches * hp.epochs
        model.clearActivityPrior()
        let average = averaging.map { ($0, IterateAverage(model)) }
        var runStep = 0
        for epoch in 0..<hp.epochs {
            // Fisher–Yates with the trainer's own generator: reproducible for a seed.
            for i in stride(from: order.count - 1, to: 0, by: -1) {
                order.swapAt(i, rng.below(i + 1))
            }
            let started = Clock.now
            var intervalStart = started
            var lossSum = 0.0, correct = 0, samples = 0
            var intervalLoss = 0.0, intervalCorrect = 0, intervalSamples = 0, intervalPairs = 0
            order.withUnsafeBufferPointer { ord in
                for b in 0..<batches {
                    let lo = b * hp.miniBatchSize, hi = min(lo + hp.miniBatchSize, pairs.count)
                    let result = trainBatch(pairs, UnsafeBufferPointer(rebasing: ord[lo..<hi]))
                    runStep += 1
                    if let (schedule, sums) = average,
                       schedule.samples(step: runStep, totalSteps: totalSteps, stepsPerEpoch: batches) {
                        sums.add()
                    }
                    lossSum += result.loss; correct += result.correct; samples += result.samples
                    intervalLoss += result.loss; intervalCorrect += result.correct
                    intervalSamples += result.samples; intervalPairs += hi - lo
                    report(.progress(epoch: epoch, batch: b + 1, batches: batches))
                    if (b + 1) % hp.batchMetricsPublishInterval == 0 {
                        let now = Clock.now
                        let seconds = max(now - intervalStart, 1e-9)
                        report(.speedometer(epoch: epoch, batch: b + 1,
                                            samplesPerSecond: Double(intervalSamples) / seconds,
                                            pairsPerSecond: Double(intervalPairs) / seconds,
                                            loss: intervalLoss / Double(max(intervalSamples, 1)),
                                            accuracy: Double(intervalCorrect) / Double(max(intervalSamples, 1))))
                        intervalStart = now
                        intervalLoss = 0; intervalCorrect = 0; intervalSamples = 0; intervalPairs = 0
                    }
                }
            }
            if runStep == totalSteps, let (_, sums) = average { sums.writeMean() }
            let seconds = max(Clock.now - started, 1e-9)
            model.trainedEpochs += 1
            model.trainedPairs += pairs.count
            var epochReport = EpochReport(epoch: epoch, loss: lossSum / Double(max(samples, 1)),
                                          accuracy: Double(correct) / Double(max(samples, 1)),
                                          pairsPerSecond: Double(pairs.count) / seconds,
                                          samplesPerSecond: Double(samples) / seconds, seconds: seconds,
                                          validationAUC: nil)
            if let validation, validation.count > 0 {
                epochReport.validationAUC = Evaluation.discriminatorAUC(model: model, pairs: validation, threads: threads)
            }
            reports.append(epochReport)
            report(.epochEnd(epochReport))
        }
        model.recordLogins(pairs)
        return reports
    }

    struct BatchResult { var loss: Double; var correct: Int; var samples: Int }

    /// One optimisation step on the pairs at `indices`: forward, backward and
    /// update, one step function after another. With `capture`, the gradients go
    /// there instead of into an update, and the model is left as it was.
    func trainBatch(_ pairs: TrainingPairs, _ indices: UnsafeBufferPointer<Int32>,
                    capture: ((Gradients) -> Void)? = nil) -> BatchResult {
        let shape = BatchShape(positives: indices.count, hp)
        let n = shape.addresses, b = buffers
        step += 1
        var timer = PhaseTimer()

        TrainingStep.sampleBatch(pairs, indices, shape, entityCount: UInt64(hp.numEntityVectors),
                                 routed: randomNegatives.table, rng: &rng,
                                 ips: b.ips.pointer, entityRows: b.entityRows.pointer, shifts: b.shifts.pointer)
        TrainingStep.embedForward(UnsafeBufferPointer(start: b.ips.pointer, count: n), layout: model.layout,
                                  table: model.ipTable.pointer, d: d,
                                  tokenRows: b.tokenRows.pointer, tokenStarts: b.tokenStarts.pointer,
                                  out: b.layerInputs[0].pointer, threads: threads)
        timer.lap(.gather, into: &phaseSeconds)
        TrainingStep.layersForward(model, rows: n, inputs: b.layerInputs, activations: b.activations, threads: threads)
        timer.lap(.layersForward, into: &phaseSeconds)

        let (loss, correct) = TrainingStep.scoreAndLoss(
            shape, entities: model.entityTable.pointer, entityRows: b.entityRows.pointer,
            ipVectors: b.layerInputs[model.layerCount].pointer, shifts: b.shifts.pointer, d: d,
            sampleGrad: b.sampleGrad.pointer, entityGrad: b.entityGrad.pointer, threads: threads)
        let result = BatchResult(loss: loss, correct: correct, samples: shape.samples)
        TrainingStep.scoreBackward(shape, entities: model.entityTable.pointer, entityRows: b.entityRows.pointer,
                                   shifts: b.shifts.pointer, sampleGrad: b.sampleGrad.pointer, d: d,
                                   ipGrad: b.ipGrad.pointer, threads: threads)
        timer.lap(.scores, into: &phaseSeconds)
        TrainingStep.layersBackward(model, rows: n, inputs: b.layerInputs, activations: b.activations,
                                    ipGrad: b.ipGrad.pointer, preActivationGrad: b.preActivationGrad.pointer,
                                    weightGrads: grads.weights, biasGrads: grads.biases, threads: threads)
        timer.lap(.layersBackward, into: &phaseSeconds)

        let ipRows = TrainingStep.groupTokensByRow(
            addresses: n, tokenRows: b.tokenRows.pointer, tokenStarts: b.tokenStarts.pointer,
            usedRows: grads.ipRows.pointer, count: grads.rowCount.pointer, start: grads.rowStart.pointer,
            grouped: grads.groupedUses.pointer)
        let entityRows = TrainingStep.accumulateEntityGradients(
            positives: shape.positives, entityRows: b.entityRows.pointer, entityGrad: b.entityGrad.pointer, d: d,
            into: grads.entity.pointer, touchedRows: grads.entityRows.pointer, listed: grads.entityListed.pointer)
        if let capture {
            capture(collectGradients(loss: loss / Double(shape.samples), ipRows: ipRows, entityRows: entityRows))
            step -= 1
            return result
        }
        timer.lap(.group, into: &phaseSeconds)

        let lrT = Adam.correctedRate(Float(hp.learningRate), step: Float(step))
        let wd = Float(hp.weightDecay)
        TrainingStep.updateIPRows(UnsafeBufferPointer(start: grads.ipRows.pointer, count: ipRows),
                                  count: grads.rowCount.pointer, start: grads.rowStart.pointer,
                                  grouped: grads.groupedUses.pointer, ipGrad: b.ipGrad.pointer, d: d,
                                  table: model.ipTable.pointer, moments: ipMoments, lrT: lrT, weightDecay: wd,
                                  threads: threads)
        TrainingStep.updateRows(UnsafeBufferPointer(start: grads.entityRows.pointer, count: entityRows), d: d,
                                table: model.entityTable.pointer, gradient: grads.entity.pointer,
                                moments: entityMoments, lrT: lrT, weightDecay: wd, threads: threads)
        TrainingStep.updateLayers(model, weightGrads: grads.weights, biasGrads: grads.biases,
                                  weightMoments: weightMoments, biasMoments: biasMoments, lrT: lrT, weightDecay: wd)
        timer.lap(.adam, into: &phaseSeconds)
        return result
    }
}
