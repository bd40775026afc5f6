import IPSightCore
import CKernels
import Glibc

/// One optimisation step as plain functions over the buffers each reads and
/// writes, in the order `Trainer.trainBatch` runs them (the shape of llm.c's
/// training step): sample, embed, layers forward, scores and loss, then back
/// through the scores and the layers, group the tables' gradients, and update.
/// B positives, R random and S shuffled negatives per positive, n = B(1 + R)
/// addresses, d floats a vector. Loops over rows are split over `threads` by
/// position alone, so a run is the same whatever else the machine is doing.
enum TrainingStep {
    // MARK: Forward

    /// The batch's addresses (the B positives, then R random negatives per positive,
    /// each of its positive's family) and entity rows, then the S shifts by which
    /// pairs borrow each other's addresses as shuffled negatives.
    static func sampleBatch(_ pairs: TrainingPairs, _ indices: UnsafeBufferPointer<Int32>, _ shape: BatchShape,
                            entityCount: UInt64, routed: RoutedNetworks?, rng: inout SeededRandom,
                            ips: UnsafeMutablePointer<IPAddress>, entityRows: UnsafeMutablePointer<Int32>,
                            shifts: UnsafeMutablePointer<Int>) {
        let B = shape.positives, R = shape.random
        for i in 0..<B {
            let p = Int(indices[i])
            ips[i] = pairs.ips[p]
            entityRows[i] = Int32(pairs.entityHashes[p] % entityCount)
            for j in 0..<R {
                ips[B + i * R + j] = RandomNegatives.address(like: pairs.ips[p], from: routed, using: &rng)
            }
        }
        for s in 0..<shape.shuffled { shifts[s] = 1 + rng.below(B - 1) }
    }

    /// X_0: each address's IP-table rows (see `IPEncoderLayout`), listed, then summed.
    static func embedForward(_ ips: UnsafeBufferPointer<IPAddress>, layout: IPEncoderLayout,
                             table: UnsafePointer<Float>, d: Int,
                             tokenRows: UnsafeMutablePointer<Int32>, tokenStarts: UnsafeMutablePointer<Int32>,
                             out x0: UnsafeMutablePointer<Float>, threads: Int) {
        layout.listTokens(of: ips, rows: tokenRows, starts: tokenStarts)
        Parallel.loop(ips.count, threads: threads) { _, lo, hi in
            ipsight_gather_sums(table, d, tokenRows, tokenStarts + lo, hi - lo, x0 + lo * d)
        }
    }

    /// X_{l+1} = X_l + tanh(W_l X_l + b_l) for every layer, keeping each tanh; the
    /// prior channel of X_L (the IP embeddings) held at 0, as training wants it.
    static func layersForward(_ model: Model, rows n: Int, inputs: [FloatBuffer], activations: [FloatBuffer],
                              threads: Int) {
        for l in 0..<model.layerCount {
            model.applyLayer(l, rows: n, input: inputs[l].pointer, activation: activations[l].pointer,
                             output: inputs[l + 1].pointer, threads: threads)
        }
        model.setPriorChannel(inputs[model.layerCount].pointer, rows: n, to: 0)
    }

    /// Every sample's score (entity vector · IP embedding) and cross entropy, its
    /// dL/dscore into `sampleGrad` (per positive: itself, its R random, its S
    /// shuffled negatives), and each positive's dL/dE into `entityGrad`. L is the
    /// batch's mean loss. Returns the summed loss and the samples the score puts on
    /// the right side of 0.
    static func scoreAndLoss(_ shape: BatchShape, entities: UnsafePointer<Float>, entityRows: UnsafePointer<Int32>,
                             ipVectors: UnsafePointer<Float>, shifts: UnsafePointer<Int>, d: Int,
                             sampleGrad: UnsafeMutablePointer<Float>, entityGrad: UnsafeMutablePointer<Float>,
                             threads: Int) -> (loss: Double, correct: Int) {
        let B = shape.positives, R = shape.random, S = shape.shuffled, perPositive = shape.perPositive
        let invTotal = 1 / Float(shape.samples)
        // One sum per thread, added in a fixed order: the same loss every run.
        var parts = [(loss: Double, correct: Int)](repeating: (0, 0), count: threads)
        parts.withUnsafeMutableBufferPointer { parts in
            Parallel.loop(B, threads: threads) { part, lo, hi in
                var loss = 0.0, correct = 0
                for i in lo..<hi {
                    let e = entities + Int(entityRows[i]) * d
                    let ge = entityGrad + i * d
                    ge.update(repeating: 0, count: d)
                    let g = sampleGrad + i * perPositive
                    func sample(_ v: UnsafePointer<Float>, _ label: Bool, _ slot: Int) {
                        let s = Kernels.dot(e, v, d)
                        let (l, grad) = logistic(s, label)
                        loss += l
                        if (s > 0) == label { correct += 1 }
                        let gs = grad * invTotal
                        g[slot] = gs
                        Kernels.axpy(gs, v, ge, d)
                    }
                    sample(ipVectors + i * d, true, 0)
                    for j in 0..<R { sample(ipVectors + (B + i * R + j) * d, false, 1 + j) }
                    for s in 0..<S { sample(ipVectors + ((i + shifts[s]) % B) * d, false, 1 + R + s) }
                }
                parts[part] = (loss, correct)
            }
        }
        var loss = 0.0, correct = 0
        for part in parts {
            loss += part.loss
            correct += part.correct
        }
        return (loss, correct)
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

    // MARK: Backward

    /// dL/dX_L into `ipGrad`: each address gathers dL/dscore × entity vector from
    /// the samples it took part in: a positive's from its own pair and from the S
    /// pairs that borrowed it, a random negative's from its one pair.
    static func scoreBackward(_ shape: BatchShape, entities: UnsafePointer<Float>, entityRows: UnsafePointer<Int32>,
                              shifts: UnsafePointer<Int>, sampleGrad: UnsafePointer<Float>, d: Int,
                              ipGrad: UnsafeMutablePointer<Float>, threads: Int) {
        let B = shape.positives, R = shape.random, S = shape.shuffled, perPositive = shape.perPositive
        Parallel.loop(shape.addresses, threads: threads) { _, lo, hi in
            for k in lo..<hi {
                let out = ipGrad + k * d
                out.update(repeating: 0, count: d)
                if k < B {
                    Kernels.axpy(sampleGrad[k * perPositive], entities + Int(entityRows[k]) * d, out, d)
                    for s in 0..<S {
                        let i = (k - shifts[s] % B + B) % B   // the pair that borrowed address k
                        Kernels.axpy(sampleGrad[i * perPositive + 1 + R + s], entities + Int(entityRows[i]) * d, out, d)
                    }
                } else {
                    let i = (k - B) / R, j = (k - B) % R
                    Kernels.axpy(sampleGrad[i * perPositive + 1 + j], entities + Int(entityRows[i]) * d, out, d)
                }
            }
        }
    }

    /// Back through x_{l+1} = x_l + tanh(W x_l + b), last layer first, from dL/dX_L
    /// in `ipGrad`, which ends as dL/dX_0: per layer dZ = dX_{l+1} ⊙ (1 − a²),
    /// dW = dZᵀ X_l, db = Σ_rows dZ, and dX_l = dX_{l+1} + dZ W.
    static func layersBackward(_ model: Model, rows n: Int, inputs: [FloatBuffer], activations: [FloatBuffer],
                               ipGrad: UnsafeMutablePointer<Float>, preActivationGrad dz: UnsafeMutablePointer<Float>,
                               weightGrads: [FloatBuffer], biasGrads: [FloatBuffer], threads: Int) {
        let d = model.dimension
        for l in stride(from: model.layerCount - 1, through: 0, by: -1) {
            let a = activations[l].pointer
            Parallel.loop(n, threads: threads) { _, lo, hi in
                for k in lo..<hi {
                    let ar = a + k * d, gr = ipGrad + k * d, zr = dz + k * d
                    for j in 0..<d { zr[j] = gr[j] * (1 - ar[j] * ar[j]) }
                }
            }
            Kernels.gemm(transA: true, transB: false, m: d, n: d, k: n, dz, lda: d,
                         inputs[l].pointer, ldb: d, beta: 0, weightGrads[l].pointer, ldc: d, threads: threads)
            let gb = biasGrads[l].pointer
            gb.update(repeating: 0, count: d)
            for k in 0..<n { Kernels.add(dz + k * d, gb, d) }
            Kernels.gemm(transA: false, transB: false, m: n, n: d, k: d, dz, lda: d,
                         model.weights[l].pointer, ldb: d, beta: 1, ipGrad, ldc: d, threads: threads)
        }
    }

    /// Counting sort of the batch's (row, address) token uses by IP-table row.
    /// Returns how many rows were used, listed once each in `usedRows`; the
    /// addresses that used row r are then `grouped[start[r] ..< start[r] + count[r]]`.
    /// `count` is zero on entry (`updateIPRows` and `Trainer.gradients` reset it).
    static func groupTokensByRow(addresses n: Int, tokenRows rows: UnsafePointer<Int32>,
                                 tokenStarts starts: UnsafePointer<Int32>, usedRows: UnsafeMutablePointer<Int32>,
                                 count: UnsafeMutablePointer<Int32>, start: UnsafeMutablePointer<Int32>,
                                 grouped: UnsafeMutablePointer<Int32>) -> Int {
        var used = 0
        for t in 0..<Int(starts[n]) {
            let r = Int(rows[t])
            if count[r] == 0 {
                usedRows[used] = Int32(r)
                used += 1
            }
            count[r] += 1
        }
        var running: Int32 = 0
        for u in 0..<used {
            let r = Int(usedRows[u])
            start[r] = running
            running += count[r]
        }
        for k in 0..<n {
            for t in Int(starts[k])..<Int(starts[k + 1]) {
                let r = Int(rows[t])
                grouped[Int(start[r])] = Int32(k)
                start[r] += 1
            }
        }
        // Each start now points past its group: step back.
        for u in 0..<used {
            let r = Int(usedRows[u])
            start[r] -= count[r]
        }
        return used
    }

    /// Adds each positive's dL/dE into its entity row of the table-sized `gradient`.
    /// Returns how many rows were touched, listed once each in `touchedRows`.
    /// `listed` is all false on entry and on return.
    static func accumulateEntityGradients(positives B: Int, entityRows: UnsafePointer<Int32>,
                                          entityGrad: UnsafePointer<Float>, d: Int,
                                          into gradient: UnsafeMutablePointer<Float>,
                                          touchedRows: UnsafeMutablePointer<Int32>,
                                          listed: UnsafeMutablePointer<Bool>) -> Int {
        var touched = 0
        for i in 0..<B {
            let r = Int(entityRows[i])
            if !listed[r] {
                listed[r] = true
                touchedRows[touched] = Int32(r)
                touched += 1
            }
            Kernels.add(entityGrad + i * d, gradient + r * d, d)
        }
        for u in 0..<touched { listed[Int(touchedRows[u])] = false }
        return touched
    }

    // MARK: Update

    /// Sums each used IP-table row's gradient from the addresses that used it
    /// (grouped by `groupTokensByRow`) in a small local buffer and takes the row's
    /// Adam step at once, so no table-sized gradient is written and read back.
    /// Rows are split over the threads; their counts are reset for the next batch.
    static func updateIPRows(_ usedRows: UnsafeBufferPointer<Int32>, count: UnsafeMutablePointer<Int32>,
                             start: UnsafePointer<Int32>, grouped: UnsafePointer<Int32>,
                             ipGrad: UnsafePointer<Float>, d: Int, table: UnsafeMutablePointer<Float>,
                             moments: AdamMoments, lrT: Float, weightDecay: Float, threads: Int) {
        let m = moments.m.pointer, v = moments.v.pointer
        Parallel.loop(usedRows.count, threads: threads) { _, lo, hi in
            let g = UnsafeMutablePointer<Float>.allocate(capacity: d)
            defer { g.deallocate() }
            for u in lo..<hi {
                let r = Int(usedRows[u])
                let first = Int(start[r]), uses = Int(count[r])
                g.update(from: ipGrad + Int(grouped[first]) * d, count: d)
                for e in (first + 1)..<(first + uses) { Kernels.add(ipGrad + Int(grouped[e]) * d, g, d) }
                Adam.update(table + r * d, m + r * d, v + r * d, g, d, lrT: lrT, weightDecay: weightDecay)
                count[r] = 0
            }
        }
    }

    /// Adam on the listed rows of a table whose gradient is held densely
    /// (`gradient`, zero again afterwards); rows split over the threads.
    static func updateRows(_ rows: UnsafeBufferPointer<Int32>, d: Int, table: UnsafeMutablePointer<Float>,
                           gradient: UnsafeMutablePointer<Float>, moments: AdamMoments,
                           lrT: Float, weightDecay: Float, threads: Int) {
        let m = moments.m.pointer, v = moments.v.pointer
        Parallel.loop(rows.count, threads: threads) { _, lo, hi in
            for k in lo..<hi {
                let offset = Int(rows[k]) * d
                Adam.update(table + offset, m + offset, v + offset, gradient + offset, d,
                            lrT: lrT, weightDecay: weightDecay)
            }
        }
    }

    /// Adam on every layer's weights (with weight decay) and biases (without).
    static func updateLayers(_ model: Model, weightGrads: [FloatBuffer], biasGrads: [FloatBuffer],
                             weightMoments: [AdamMoments], biasMoments: [AdamMoments], lrT: Float, weightDecay: Float) {
        for l in 0..<model.layerCount {
            Adam.update(model.weights[l].pointer, weightMoments[l].m.pointer, weightMoments[l].v.pointer,
                        weightGrads[l].pointer, model.weights[l].count, lrT: lrT, weightDecay: weightDecay)
            Adam.update(model.biases[l].pointer, biasMoments[l].m.pointer, biasMoments[l].v.pointer,
                        biasGrads[l].pointer, model.biases[l].count, lrT: lrT, weightDecay: 0)
        }
    }
}
