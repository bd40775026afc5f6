import IPSightCore

extension Trainer {
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

    /// Reads the batch's gradients out of the accumulators (the first `ipRows`
    /// used IP rows, the first `entityRows` touched entity rows) and clears them,
    /// as an update would have.
    func collectGradients(loss: Double, ipRows: Int, entityRows: Int) -> Gradients {
        var result = Gradients(loss: loss)
        let ipGrad = buffers.ipGrad.pointer
        for u in 0..<entityRows {
            let r = Int(grads.entityRows.pointer[u])
            let row = grads.entity.pointer + r * d
            result.entityRows[r] = Array(UnsafeBufferPointer(start: row, count: d))
            row.update(repeating: 0, count: d)
        }
        for u in 0..<ipRows {
            let r = Int(grads.ipRows.pointer[u])
            let first = Int(grads.rowStart.pointer[r]), uses = Int(grads.rowCount.pointer[r])
            var g = [Float](repeating: 0, count: d)
            g.withUnsafeMutableBufferPointer { g in
                for e in first..<(first + uses) {
                    Kernels.add(ipGrad + Int(grads.groupedUses.pointer[e]) * d, g.baseAddress!, d)
                }
            }
            result.ipRows[r] = g
            grads.rowCount.pointer[r] = 0
        }
        result.weights = grads.weights.map(\.array)
        result.biases = grads.biases.map(\.array)
        return result
    }
}
