import IPSightCore
import CKernels
import Glibc

/// Trains a model by discriminating real pairs from negative samples: for every
/// positive (entity, ip), R pairs of the entity with random addresses of the same
/// family and S pairs of the entity with another pair's address from the same
/// mini-batch. Cross entropy on the dot product, Adam; the embedding tables get
/// lazy updates (only the rows a batch touches, with weight decay on those rows),
/// the dense layers ordinary ones. The model a run ends with is the mean of its
/// iterates after a burn-in (`averaging`).
public final class Trainer: @unchecked Sendable {
    public let model: Model
    let hp: Hyperparameters
    let d: Int
    let threads: Int
    var rng: SeededRandom
    var step = 0
    /// Seconds spent in each phase of the training steps so far, for `ipsight bench`.
    public private(set) var phaseSeconds: [TrainingPhase: Double] = [:]

    // Adam moments, same shapes as the parameters.
    let entityM: FloatBuffer, entityV: FloatBuffer
    let ipM: FloatBuffer, ipV: FloatBuffer
    let weightM: [FloatBuffer], weightV: [FloatBuffer], biasM: [FloatBuffer], biasV: [FloatBuffer]

    // Dense gradient accumulators for the tables; only touched rows are non-zero.
    let entityGrad: FloatBuffer
    var entityTouched: [Bool]
    var entityRowsTouched: [Int32] = [], ipRowsTouched: [Int32] = []
    // The batch's token uses grouped by IP-table row (see `groupTokensByRow`).
    var rowCount: [Int32], rowStart: [Int32], groupedUses: [Int32] = []
    let weightGrad: [FloatBuffer], biasGrad: [FloatBuffer]

    // Per-batch scratch, sized for the largest batch.
    let capacityPairs: Int, capacityIPs: Int
    var batchIPs: [IPAddress]
    var batchEntityRows: [Int32]
    var tokenRows: [Int32], tokenStart: [Int32]
    let layerInputs: [FloatBuffer]       // X_0 ... X_L, each capacityIPs × d
    let activations: [FloatBuffer]       // tanh outputs per layer
    let gradOut: FloatBuffer             // dL/dX_L, then reused down the layers
    let gradTmp: FloatBuffer
    let entityGradBatch: FloatBuffer     // dL/dE per positive in the batch
    var sampleGrad: [Float]              // dL/dscore, (1 + R + S) per positive
    var shuffleShift: [Int]

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
        entityM = FloatBuffer(count: model.entityTable.count); entityV = FloatBuffer(count: model.entityTable.count)
        ipM = FloatBuffer(count: model.ipTable.count); ipV = FloatBuffer(count: model.ipTable.count)
        weightM = model.weights.map { FloatBuffer(count: $0.count) }
        weightV = model.weights.map { FloatBuffer(count: $0.count) }
        biasM = model.biases.map { FloatBuffer(count: $0.count) }
        biasV = model.biases.map { FloatBuffer(count: $0.count) }
        entityGrad = FloatBuffer(count: model.entityTable.count)
        entityTouched = [Bool](repeating: false, count: hp.numEntityVectors)
        rowCount = [Int32](repeating: 0, count: model.layout.rows)
        rowStart = [Int32](repeating: 0, count: model.layout.rows)
        weightGrad = model.weights.map { FloatBuffer(count: $0.count) }
        biasGrad = model.biases.map { FloatBuffer(count: $0.count) }
        capacityPairs = hp.miniBatchSize
        let ipCapacity = hp.miniBatchSize * (1 + hp.randomNegativeSamplingRate)
        let floats = ipCapacity * model.dimension
        capacityIPs = ipCapacity
        batchIPs = [IPAddress](repeating: IPAddress(high: 0, low: 0), count: capacityIPs)
        batchEntityRows = [Int32](repeating: 0, count: capacityPairs)
        tokenRows = [Int32](repeating: 0, count: capacityIPs * IPEncoderLayout.maximumTokens)
        tokenStart = [Int32](repeating: 0, count: capacityIPs + 1)
        layerInputs = (0...hp.numIPEncoderLayers).map { _ in FloatBuffer(count: floats) }
        activations = (0..<hp.numIPEncoderLayers).map { _ in FloatBuffer(count: floats) }
        gradOut = FloatBuffer(count: floats)
        gradTmp = FloatBuffer(count: floats)
        entityGradBatch = FloatBuffer(count: capacityPairs * model.dimension)
        sampleGrad = [Float](repeating: 0, count: capacityPairs * (1 + hp.randomNegativeSamplingRate + hp.shuffledNegativeSamplingRate))
        shuffleShift = [Int](repeating: 1, count: hp.shuffledNegativeSamplingRate)
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

    /// One optimisation step on the pairs at `indices`.
    /// The gradients of one batch's mean cross entropy (without weight decay), for
    /// checking the analytic gradients against finite differences.
    public struct Gradients {
        public var loss: Double
        public var entityRows: [Int: [Float]] = [:]
        public var ipRows: [Int: [Float]] = [:]
        public var weights: [[Float]] = []
        public var biases: [[Float]] = []
    }

    /// Runs forward and backward on the pairs at `indices` without changing the model.
    /// The negative samples come from the trainer's generator, so restoring
    /// `randomState` repeats them exactly.
    public func gradients(_ pairs: TrainingPairs, indices: [Int32]) -> Gradients {
        var captured: Gradients? = nil
        _ = indices.withUnsafeBufferPointer { trainBatch(pairs, $0, capture: { captured = $0 }) }
        return captured!
    }

    /// The state of the negative-sample generator.
    public var randomState: SeededRandom {
        get { rng }
        set { rng = newValue }
    }

    func trainBatch(_ pairs: TrainingPairs, _ indices: UnsafeBufferPointer<Int32>,
                    capture: ((Gradients) -> Void)? = nil) -> BatchResult {
        let B = indices.count
        let R = hp.randomNegativeSamplingRate
        let S = B >= 2 ? hp.shuffledNegativeSamplingRate : 0
        let perPair = 1 + R + S
        let nIPs = B * (1 + R)
        let total = B * perPair
        step += 1
        var mark = Clock.now
        func phase(_ p: TrainingPhase) {
            let now = Clock.now
            phaseSeconds[p, default: 0] += now - mark
            mark = now
        }

        // 1. The batch's addresses: positives first, then R random ones per positive
        //    (same family as the positive), and the entity rows.
        let entityCount = UInt64(hp.numEntityVectors)
        let routed = randomNegatives.table      // once per batch, not once per draw
        for i in 0..<B {
            let p = Int(indices[i])
            batchIPs[i] = pairs.ips[p]
            batchEntityRows[i] = Int32(pairs.entityHashes[p] % entityCount)
            for j in 0..<R {
                batchIPs[B + i * R + j] = randomAddress(like: pairs.ips[p], from: routed)
            }
        }
        for s in 0..<S { shuffleShift[s] = 1 + rng.below(B - 1) }

        // 2. Encoder forward: token rows, their sums, then the layers.
        tokenRows.withUnsafeMutableBufferPointer { rows in
            tokenStart.withUnsafeMutableBufferPointer { start in
                batchIPs.withUnsafeBufferPointer { ips in
                    model.layout.listTokens(of: UnsafeBufferPointer(rebasing: ips[..<nIPs]),
                                            rows: rows.baseAddress!, starts: start.baseAddress!)
                }
            }
        }
        let table = model.ipTable.pointer
        let x0 = layerInputs[0].pointer
        let dd = d
        tokenRows.withUnsafeBufferPointer { rows in
            tokenStart.withUnsafeBufferPointer { start in
                parallel(nIPs) { lo, hi in
                    ipsight_gather_sums(table, dd, rows.baseAddress!, start.baseAddress! + lo, hi - lo, x0 + lo * dd)
                }
            }
        }
        phase(.gather)
        for l in 0..<model.layerCount {
            model.applyLayer(l, rows: nIPs, input: layerInputs[l].pointer,
                             activation: activations[l].pointer, output: layerInputs[l + 1].pointer, threads: threads)
        }
        let ipVec = layerInputs[model.layerCount].pointer
        model.setPriorChannel(ipVec, rows: nIPs, to: 0)
        phase(.layersForward)

        // 3. Scores, loss and dL/dscore; dL/dE per positive.
        let invTotal = 1 / Float(total)
        let entities = model.entityTable.pointer
        let gE = entityGradBatch.pointer
        var lossParts = [Double](repeating: 0, count: threads)
        var correctParts = [Int](repeating: 0, count: threads)
        sampleGrad.withUnsafeMutableBufferPointer { gBuf in
            batchEntityRows.withUnsafeBufferPointer { eRows in
                shuffleShift.withUnsafeBufferPointer { shifts in
                    lossParts.withUnsafeMutableBufferPointer { lossOut in
                        correctParts.withUnsafeMutableBufferPointer { correctOut in
                            parallelChunks(B) { chunk, lo, hi in
                                var loss = 0.0, correct = 0
                                for i in lo..<hi {
                                    let e = entities + Int(eRows[i]) * dd
                                    let ge = gE + i * dd
                                    ge.update(repeating: 0, count: dd)
                                    let g = gBuf.baseAddress! + i * perPair
                                    // positive
                                    func sample(_ v: UnsafePointer<Float>, _ label: Bool, _ slot: Int) {
                                        let s = Kernels.dot(e, v, dd)
                                        let (l, grad) = Trainer.logistic(s, label)
                                        loss += l
                                        if (s > 0) == label { correct += 1 }
                                        let gs = grad * invTotal
                                        g[slot] = gs
                                        Kernels.axpy(gs, v, ge, dd)
                                    }
                                    sample(ipVec + i * dd, true, 0)
                                    for j in 0..<R { sample(ipVec + (B + i * R + j) * dd, false, 1 + j) }
                                    for s in 0..<S { sample(ipVec + ((i + shifts[s]) % B) * dd, false, 1 + R + s) }
                                }
                                lossOut[chunk] = loss
                                correctOut[chunk] = correct
                            }
                        }
                    }
                }
            }
        }

        // 4. dL/d(ip embedding): each address gathers from the samples it took part in.
        let gOut = gradOut.pointer
        sampleGrad.withUnsafeBufferPointer { gBuf in
            batchEntityRows.withUnsafeBufferPointer { eRows in
                shuffleShift.withUnsafeBufferPointer { shifts in
                    parallel(nIPs) { lo, hi in
                        for k in lo..<hi {
                            let out = gOut + k * dd
                            if k < B {
                                out.update(repeating: 0, count: dd)
                                Kernels.axpy(gBuf[k * perPair], entities + Int(eRows[k]) * dd, out, dd)
                                for s in 0..<S {
                                    let i = (k - shifts[s] % B + B) % B   // the pair that borrowed address k
                                    Kernels.axpy(gBuf[i * perPair + 1 + R + s], entities + Int(eRows[i]) * dd, out, dd)
                                }
                            } else {
                                let i = (k - B) / R, j = (k - B) % R
                                out.update(repeating: 0, count: dd)
                                Kernels.axpy(gBuf[i * perPair + 1 + j], entities + Int(eRows[i]) * dd, out, dd)
                            }
                        }
                    }
                }
            }
        }

        phase(.scores)
        // 5. Back through the layers: x_{l+1} = x_l + tanh(W x_l + b).
        for l in stride(from: model.layerCount - 1, through: 0, by: -1) {
            let a = activations[l].pointer
            let dz = gradTmp.pointer
            parallel(nIPs) { lo, hi in
                for k in lo..<hi {
                    let ar = a + k * dd, gr = gOut + k * dd, zr = dz + k * dd
                    for j in 0..<dd { zr[j] = gr[j] * (1 - ar[j] * ar[j]) }
                }
            }
            Kernels.gemm(transA: true, transB: false, m: dd, n: dd, k: nIPs, dz, lda: dd,
                         layerInputs[l].pointer, ldb: dd, beta: 0, weightGrad[l].pointer, ldc: dd, threads: threads)
            let gb = biasGrad[l].pointer
            gb.update(repeating: 0, count: dd)
            for k in 0..<nIPs { Kernels.add(dz + k * dd, gb, dd) }
            // dX_l = dX_{l+1} + dZ · W
            Kernels.gemm(transA: false, transB: false, m: nIPs, n: dd, k: dd, dz, lda: dd,
                         model.weights[l].pointer, ldb: dd, beta: 1, gOut, ldc: dd, threads: threads)
        }

        phase(.layersBackward)
        // 6. Gradients of the tables. IP table: group the token uses by row (a
        //    counting sort); each row then sums its gradient in a small local buffer
        //    and takes its Adam step at once, so no table-sized gradient is written
        //    and read back. Entity table: rows are few, accumulate them densely.
        groupTokensByRow(nIPs)
        let eG = entityGrad.pointer
        entityRowsTouched.removeAll(keepingCapacity: true)
        batchEntityRows.withUnsafeBufferPointer { eRows in
            entityTouched.withUnsafeMutableBufferPointer { touched in
                for i in 0..<B {
                    let r = Int(eRows[i])
                    if !touched[r] { touched[r] = true; entityRowsTouched.append(Int32(r)) }
                    Kernels.add(gE + i * dd, eG + r * dd, dd)
                }
            }
        }
        let batchLoss = lossParts.reduce(0, +)
        let batchCorrect = correctParts.reduce(0, +)
        if let capture {
            capture(collectGradients(loss: batchLoss / Double(total), ipGradient: gOut))
            step -= 1
            return BatchResult(loss: batchLoss, correct: batchCorrect, samples: total)
        }
        phase(.group)
        let lr = Float(hp.learningRate), wd = Float(hp.weightDecay)
        let t = Float(step)
        let lrT = lr * (1 - powf(Adam.beta2, t)).squareRoot() / (1 - powf(Adam.beta1, t))
        updateIPRows(gradient: gOut, lrT: lrT, wd: wd)
        updateRows(entityRowsTouched, params: model.entityTable, grad: entityGrad, m: entityM, v: entityV, lrT: lrT, wd: wd)
        for r in entityRowsTouched { entityTouched[Int(r)] = false }
        for l in 0..<model.layerCount {
            Adam.update(model.weights[l].pointer, weightM[l].pointer, weightV[l].pointer, weightGrad[l].pointer,
                        model.weights[l].count, lrT: lrT, weightDecay: wd)
            Adam.update(model.biases[l].pointer, biasM[l].pointer, biasV[l].pointer, biasGrad[l].pointer,
                        model.biases[l].count, lrT: lrT, weightDecay: 0)
        }
        phase(.adam)
        return BatchResult(loss: batchLoss, correct: batchCorrect, samples: total)
    }

    /// Gathers the gradients of the current batch and clears the accumulators.
    func collectGradients(loss: Double, ipGradient gOut: UnsafeMutablePointer<Float>) -> Gradients {
        var result = Gradients(loss: loss)
        let dd = d
        for r in entityRowsTouched {
            let p = entityGrad.pointer + Int(r) * dd
            result.entityRows[Int(r)] = Array(UnsafeBufferPointer(start: p, count: dd))
            p.update(repeating: 0, count: dd)
            entityTouched[Int(r)] = false
        }
        for r in ipRowsTouched {
            let ri = Int(r)
            var g = [Float](repeating: 0, count: dd)
            let first = Int(rowStart[ri])
            for e in first..<(first + Int(rowCount[ri])) {
                g.withUnsafeMutableBufferPointer { Kernels.add(gOut + Int(groupedUses[e]) * dd, $0.baseAddress!, dd) }
            }
            result.ipRows[ri] = g
            rowCount[ri] = 0
        }
        result.weights = weightGrad.map(\.array)
        result.biases = biasGrad.map(\.array)
        return result
    }

    /// Counting sort of the batch's (row, address) token uses by row: afterwards
    /// `ipRowsTouched` lists each used row once, and the addresses that used row r
    /// are `groupedUses[rowStart[r] ..< rowStart[r] + rowCount[r]]`.
    func groupTokensByRow(_ nIPs: Int) {
        ipRowsTouched.removeAll(keepingCapacity: true)
        let uses = Int(tokenStart[nIPs])
        if groupedUses.count < uses { groupedUses = [Int32](repeating: 0, count: uses) }
        tokenRows.withUnsafeBufferPointer { rows in
            tokenStart.withUnsafeBufferPointer { start in
                rowCount.withUnsafeMutableBufferPointer { count in
                    rowStart.withUnsafeMutableBufferPointer { cursor in
                        groupedUses.withUnsafeMutableBufferPointer { grouped in
                            for t in 0..<uses {
                                let r = Int(rows[t])
                                if count[r] == 0 { ipRowsTouched.append(Int32(r)) }
                                count[r] += 1
                            }
                            var running: Int32 = 0
                            for r in ipRowsTouched {
                                cursor[Int(r)] = running
                                running += count[Int(r)]
                            }
                            for k in 0..<nIPs {
                                for t in Int(start[k])..<Int(start[k + 1]) {
                                    let r = Int(rows[t])
                                    grouped[Int(cursor[r])] = Int32(k)
                                    cursor[r] += 1
                                }
                            }
                            // Each cursor now points past its group: step back to the start.
                            for r in ipRowsTouched { cursor[Int(r)] -= count[Int(r)] }
                        }
                    }
                }
            }
        }
    }

    /// Sums each touched IP-table row's gradient from the addresses that used it and
    /// applies Adam to the row; rows are split over the threads.
    func updateIPRows(gradient gOut: UnsafeMutablePointer<Float>, lrT: Float, wd: Float) {
        let dd = d
        let params = model.ipTable.pointer, m = ipM.pointer, v = ipV.pointer
        ipRowsTouched.withUnsafeBufferPointer { touched in
            rowCount.withUnsafeMutableBufferPointer { count in
                rowStart.withUnsafeBufferPointer { start in
                    groupedUses.withUnsafeBufferPointer { grouped in
                        parallelChunks(touched.count) { _, lo, hi in
                            let g = UnsafeMutablePointer<Float>.allocate(capacity: dd)
                            defer { g.deallocate() }
                            for u in lo..<hi {
                                let r = Int(touched[u])
                                let first = Int(start[r]), n = Int(count[r])
                                g.update(from: gOut + Int(grouped[first]) * dd, count: dd)
                                for e in (first + 1)..<(first + n) { Kernels.add(gOut + Int(grouped[e]) * dd, g, dd) }
                                Adam.update(params + r * dd, m + r * dd, v + r * dd, g, dd, lrT: lrT, weightDecay: wd)
                                count[r] = 0
                            }
                        }
                    }
                }
            }
        }
    }

    func updateRows(_ rows: [Int32], params: FloatBuffer, grad: FloatBuffer, m: FloatBuffer, v: FloatBuffer,
                    lrT: Float, wd: Float) {
        let dd = d
        rows.withUnsafeBufferPointer { rows in
            parallel(rows.count) { lo, hi in
                for k in lo..<hi {
                    let off = Int(rows[k]) * dd
                    Adam.update(params.pointer + off, m.pointer + off, v.pointer + off, grad.pointer + off, dd,
                                lrT: lrT, weightDecay: wd)
                }
            }
        }
    }

    /// A random address of the same family as `ip`: one from a network of `routed`
    /// (`randomNegatives.table`), or uniformly any IPv4 address or any IPv6 global
    /// unicast address (2000::/3).
    @inline(__always)
    func randomAddress(like ip: IPAddress, from routed: RoutedNetworks?) -> IPAddress {
        if let address = routed?.randomAddress(ipv4: ip.isIPv4, using: &rng) { return address }
        if ip.isIPv4 { return IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next())) }
        return IPAddress(high: 0x2000_0000_0000_0000 | (rng.next() >> 3), low: rng.next())
    }

    /// Cross entropy of one sample and its derivative with respect to the score.
    @inline(__always)
    static func logistic(_ s: Float, _ positive: Bool) -> (Double, Float) {
        // log(1 + e^-|s|) keeps both branches finite for any score.
        let softplus = logf(1 + expf(-abs(s)))
        let p = s >= 0 ? 1 / (1 + expf(-s)) : expf(s) / (1 + expf(s))
        if positive {
            return (Double(softplus + max(-s, 0)), p - 1)
        }
        return (Double(softplus + max(s, 0)), p)
    }

    /// Runs `body` over `0..<n` split into one contiguous range per thread.
    func parallel(_ n: Int, _ body: (Int, Int) -> Void) {
        parallelChunks(n) { _, lo, hi in body(lo, hi) }
    }

    func parallelChunks(_ n: Int, _ body: (Int, Int, Int) -> Void) {
        let parts = threads
        if parts == 1 || n < 64 {
            body(0, 0, n)
            for c in 1..<parts { body(c, n, n) }
            return
        }
        Parallel.chunks(n, parts: parts, body)
    }
}

