import IPSightCore

/// The sizes of one batch: B positives, each with R random and S shuffled negatives.
struct BatchShape {
    /// B: the batch's real pairs.
    let positives: Int
    /// R: random negatives per positive, each a random address of the positive's family.
    let random: Int
    /// S: shuffled negatives per positive, each another pair's address; none in a
    /// batch of one pair, which has no other pair to borrow from.
    let shuffled: Int

    init(positives: Int, _ hp: Hyperparameters) {
        self.positives = positives
        random = hp.randomNegativeSamplingRate
        shuffled = positives >= 2 ? hp.shuffledNegativeSamplingRate : 0
    }

    /// Samples per positive: itself, its random and its shuffled negatives.
    var perPositive: Int { 1 + random + shuffled }
    /// Addresses the encoder runs on: the positives', then the random negatives'
    /// (a shuffled negative reuses a positive's).
    var addresses: Int { positives * (1 + random) }
    var samples: Int { positives * perPositive }
}

/// What a batch writes on its way forward and back (llm.c's activations), sized
/// once for the largest batch. n = B(1 + R) addresses, d floats a vector.
final class BatchBuffers {
    /// The positives' addresses, then R random negatives per positive: n.
    let ips: ScratchBuffer<IPAddress>
    /// Each positive's entity-table row: B.
    let entityRows: ScratchBuffer<Int32>
    /// Shuffled negative s of pair i is pair (i + shifts[s]) mod B's address: S.
    let shifts: ScratchBuffer<Int>
    /// The IP-table rows of address k are tokenRows[tokenStarts[k] ..< tokenStarts[k + 1]].
    let tokenRows: ScratchBuffer<Int32>
    let tokenStarts: ScratchBuffer<Int32>
    /// X_0 (the summed table rows) ... X_L (the IP embeddings), each n × d.
    let layerInputs: [FloatBuffer]
    /// tanh(W_l X_l + b_l) per layer, n × d, kept for the backward pass.
    let activations: [FloatBuffer]
    /// dL/dscore of every sample, (1 + R + S) per positive: B(1 + R + S).
    let sampleGrad: FloatBuffer
    /// dL/dE of each positive's entity vector: B × d.
    let entityGrad: FloatBuffer
    /// dL/dX_L, then dL/dX_l on the way down the layers: n × d.
    let ipGrad: FloatBuffer
    /// dL/d(W_l X_l + b_l) of the layer being differentiated: n × d.
    let preActivationGrad: FloatBuffer

    init(_ hp: Hyperparameters, dimension d: Int) {
        let positives = hp.miniBatchSize
        let addresses = hp.miniBatchSize * (1 + hp.randomNegativeSamplingRate)
        ips = ScratchBuffer(count: addresses, repeating: IPAddress(high: 0, low: 0))
        entityRows = ScratchBuffer(count: positives, repeating: 0)
        shifts = ScratchBuffer(count: hp.shuffledNegativeSamplingRate, repeating: 1)
        tokenRows = ScratchBuffer(count: addresses * IPEncoderLayout.maximumTokens, repeating: 0)
        tokenStarts = ScratchBuffer(count: addresses + 1, repeating: 0)
        layerInputs = (0...hp.numIPEncoderLayers).map { _ in FloatBuffer(count: addresses * d) }
        activations = (0..<hp.numIPEncoderLayers).map { _ in FloatBuffer(count: addresses * d) }
        ipGrad = FloatBuffer(count: addresses * d)
        preActivationGrad = FloatBuffer(count: addresses * d)
        entityGrad = FloatBuffer(count: positives * d)
        sampleGrad = FloatBuffer(count: positives * (1 + hp.randomNegativeSamplingRate + hp.shuffledNegativeSamplingRate))
    }
}

/// The gradients of the parameters between a batch's backward pass and its Adam
/// step (llm.c's grads). The layers' are dense. A batch touches few rows of the
/// tables: the entity rows' gradients accumulate in a table-sized buffer, zero
/// outside the rows listed; the IP rows' are summed at the update straight from
/// the addresses' gradients, grouped by row, so no table-sized gradient exists.
final class ParameterGradients {
    /// num_entity_vectors × d; non-zero only in the rows a batch touched.
    let entity: FloatBuffer
    /// The entity rows a batch touched, each once, and a flag per row while listing them.
    let entityRows: ScratchBuffer<Int32>
    let entityListed: ScratchBuffer<Bool>
    /// The IP-table rows a batch used, each once.
    let ipRows: ScratchBuffer<Int32>
    /// Per IP-table row: how many token uses the batch has of it (zero between
    /// batches), and where they start in `groupedUses`.
    let rowCount: ScratchBuffer<Int32>
    let rowStart: ScratchBuffer<Int32>
    /// The addresses of the batch's token uses, grouped by row.
    let groupedUses: ScratchBuffer<Int32>
    let weights: [FloatBuffer]
    let biases: [FloatBuffer]

    init(_ model: Model) {
        let hp = model.hyperparameters
        let uses = hp.miniBatchSize * (1 + hp.randomNegativeSamplingRate) * IPEncoderLayout.maximumTokens
        entity = FloatBuffer(count: model.entityTable.count)
        entityRows = ScratchBuffer(count: min(hp.miniBatchSize, hp.numEntityVectors), repeating: 0)
        entityListed = ScratchBuffer(count: hp.numEntityVectors, repeating: false)
        ipRows = ScratchBuffer(count: min(model.layout.rows, uses), repeating: 0)
        rowCount = ScratchBuffer(count: model.layout.rows, repeating: 0)
        rowStart = ScratchBuffer(count: model.layout.rows, repeating: 0)
        groupedUses = ScratchBuffer(count: uses, repeating: 0)
        weights = model.weights.map { FloatBuffer(count: $0.count) }
        biases = model.biases.map { FloatBuffer(count: $0.count) }
    }
}
