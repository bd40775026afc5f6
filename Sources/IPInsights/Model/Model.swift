import IPSightCore
import CKernels
import Glibc

/// A trained (or initialised) IP Insights model.
///
/// score(entity, ip) = entity_embedding · ip_embedding, the log odds that the
/// pair comes from real traffic rather than from the negative-sample distribution.
/// - entity_embedding: row `hash(entity) mod num_entity_vectors` of the entity table.
/// - ip_embedding: the encoder's output. Its input is the sum of the address's
///   prefix and byte rows (see `IPEncoderLayout`); then `num_ip_encoder_layers`
///   fully connected layers, each residual, `x ← x + tanh(W x + b)`, so that
///   stacking layers never loses what the prefix rows say and deep encoders train.
///
/// With the activity prior (`hasActivityPrior`, the default for new models) the
/// last dimension is not learnt: the IP embedding's is 1 and the entity
/// embedding's is log((n + 1) / g), n the entity row's logins in training and g
/// their geometric mean over the rows that have any. The spec's negatives pair
/// each entity as often as it logs in, so its log odds say nothing of how active
/// the account is; attackers, though, pick accounts regardless of activity. Adding
/// log n turns the score into the log odds of "real" against a takeover of a
/// uniformly chosen account, and a dot product it stays (see docs/research/activity-prior.md).
public final class Model: @unchecked Sendable {
    public let hyperparameters: Hyperparameters
    public let layout: IPEncoderLayout
    public var dimension: Int { hyperparameters.vectorDim }
    public var layerCount: Int { hyperparameters.numIPEncoderLayers }

    public let entityTable: FloatBuffer      // num_entity_vectors × d
    public let ipTable: FloatBuffer          // layout.rows × d
    public let weights: [FloatBuffer]        // per layer, d × d (row = output unit)
    public let biases: [FloatBuffer]         // per layer, d
    /// Training logins per entity row over the model's whole history (warm starts
    /// add up); present when the model has the activity prior.
    public let logins: FloatBuffer?
    public var hasActivityPrior: Bool { logins != nil }

    /// Positive pairs seen in training, over the model's whole history (warm starts add up).
    public var trainedPairs: Int = 0
    public var trainedEpochs: Int = 0

    public init(hyperparameters: Hyperparameters, layout: IPEncoderLayout? = nil, activityPrior: Bool = true) {
        self.hyperparameters = hyperparameters
        let d = hyperparameters.vectorDim
        self.layout = layout ?? IPEncoderLayout(buckets: IPEncoderLayout.defaultBuckets(numEntityVectors: hyperparameters.numEntityVectors))
        entityTable = FloatBuffer(count: hyperparameters.numEntityVectors * d)
        ipTable = FloatBuffer(count: self.layout.rows * d)
        weights = (0..<hyperparameters.numIPEncoderLayers).map { _ in FloatBuffer(count: d * d) }
        biases = (0..<hyperparameters.numIPEncoderLayers).map { _ in FloatBuffer(count: d) }
        logins = activityPrior ? FloatBuffer(count: hyperparameters.numEntityVectors) : nil
    }

    /// Random initial values: small enough that every score starts near 0
    /// (probability one half), large enough to break symmetry.
    public func initialise(seed: UInt64) {
        var rng = SeededRandom(seed: seed ^ 0x1A5_16E7)
        let d = Float(dimension)
        let entityScale: Float = 1 / d.squareRoot()
        let ipScale: Float = 0.3 / d.squareRoot()
        for i in 0..<entityTable.count { entityTable[i] = rng.gaussian() * entityScale }
        for i in 0..<ipTable.count { ipTable[i] = rng.gaussian() * ipScale }
        let weightScale = 1 / d.squareRoot()
        for w in weights { for i in 0..<w.count { w[i] = rng.gaussian() * weightScale } }
        for b in biases { b.zero() }
        clearActivityPrior()
    }

    /// A copy to train further (a warm start), leaving this model as it is. `settings`
    /// may change the training hyperparameters, not the shape.
    public func copy(settings: Hyperparameters? = nil) -> Model {
        let hp = settings ?? hyperparameters
        precondition(hp.numEntityVectors == hyperparameters.numEntityVectors && hp.vectorDim == dimension
                     && hp.numIPEncoderLayers == layerCount, "a copy keeps the model's shape")
        let copy = Model(hyperparameters: hp, layout: layout, activityPrior: hasActivityPrior)
        for (from, to) in zip(ModelFile.tensorList(self), ModelFile.tensorList(copy)) {
            to.1.pointer.update(from: from.1.pointer, count: from.1.count)
        }
        copy.trainedPairs = trainedPairs
        copy.trainedEpochs = trainedEpochs
        return copy
    }

    // MARK: Activity prior

    /// Entity row r's activity prior: the last entity dimension (0 without the prior).
    public func activityPrior(row: Int) -> Float {
        hasActivityPrior ? entityTable[row * dimension + dimension - 1] : 0
    }

    /// Training learns the other dimensions: there the prior reads 0 on the entity
    /// side and the encoder's last output is held at 0, so neither gets a gradient.
    public func clearActivityPrior() {
        guard hasActivityPrior else { return }
        let d = dimension
        for r in 0..<hyperparameters.numEntityVectors { entityTable[r * d + d - 1] = 0 }
    }

    /// Counts the logins of `pairs` and writes every row's prior.
    public func recordLogins(_ pairs: TrainingPairs) {
        guard let logins else { return }
        let rows = UInt64(hyperparameters.numEntityVectors)
        var counts = [Int](repeating: 0, count: hyperparameters.numEntityVectors)
        for hash in pairs.entityHashes { counts[Int(hash % rows)] += 1 }
        for r in counts.indices where counts[r] > 0 { logins[r] += Float(counts[r]) }
        writeActivityPrior()
    }

    /// prior(r) = log((n_r + 1) / g), g the geometric mean of n + 1 over rows with logins:
    /// an entity as active as a typical one scores as the spec's model does.
    public func writeActivityPrior() {
        guard let logins else { return }
        var logSum = 0.0, active = 0
        for r in 0..<logins.count where logins[r] > 0 {
            logSum += log(Double(logins[r]) + 1)
            active += 1
        }
        let logMean = active > 0 ? logSum / Double(active) : 0
        let d = dimension
        for r in 0..<logins.count {
            entityTable[r * d + d - 1] = Float(log(Double(logins[r]) + 1) - logMean)
        }
    }

    // MARK: Entities

    /// The entity table row of an entity given as UTF-8 bytes.
    @inline(__always)
    public func entityRow(_ bytes: UnsafeRawBufferPointer) -> Int {
        Int(StableHash.xxh64(bytes) % UInt64(hyperparameters.numEntityVectors))
    }

    public func entityRow(_ entity: String) -> Int {
        var copy = entity
        return copy.withUTF8 { entityRow(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    public func entityVector(row: Int) -> UnsafeMutablePointer<Float> {
        entityTable.pointer + row * dimension
    }

    // MARK: Addresses

    /// Sums the table rows of each address into `out` (n × d): the encoder's input.
    /// The rows of all addresses are listed first, so the sums can fetch ahead.
    func gatherInputs(_ ips: UnsafeBufferPointer<IPAddress>, into out: UnsafeMutablePointer<Float>) {
        guard !ips.isEmpty else { return }
        let rows = UnsafeMutablePointer<Int32>.allocate(capacity: ips.count * IPEncoderLayout.maximumTokens)
        let starts = UnsafeMutablePointer<Int32>.allocate(capacity: ips.count + 1)
        defer { rows.deallocate(); starts.deallocate() }
        layout.listTokens(of: ips, rows: rows, starts: starts)
        ipsight_gather_sums(ipTable.pointer, dimension, rows, starts, ips.count, out)
    }

    /// Applies layer `l` to n rows: `next = x + tanh(W x + b)`, keeping `tanh(..)` in `activation`.
    func applyLayer(_ l: Int, rows n: Int, input x: UnsafePointer<Float>,
                    activation a: UnsafeMutablePointer<Float>, output next: UnsafeMutablePointer<Float>,
                    threads: Int = 1) {
        let d = dimension
        Kernels.gemm(transA: false, transB: true, m: n, n: d, k: d, x, lda: d, weights[l].pointer, ldb: d,
                     beta: 0, a, ldc: d, threads: threads)
        let b = biases[l].pointer
        for r in 0..<n {
            Kernels.residualTanh(a + r * d, bias: b, input: x + r * d, output: next + r * d, d)
        }
    }

    /// The IP embeddings of `ips` into `out` (n × d). `scratch` needs n × d floats;
    /// `threads` share the dense layers' products.
    public func encode(_ ips: UnsafeBufferPointer<IPAddress>, into out: UnsafeMutablePointer<Float>,
                       scratch: UnsafeMutablePointer<Float>, threads: Int = 1) {
        gatherInputs(ips, into: out)
        for l in 0..<layerCount {
            applyLayer(l, rows: ips.count, input: out, activation: scratch, output: out, threads: threads)
        }
        setPriorChannel(out, rows: ips.count, to: 1)
    }

    /// Sets the encoder's last output to `value` (1 when scoring, 0 in training).
    func setPriorChannel(_ out: UnsafeMutablePointer<Float>, rows n: Int, to value: Float) {
        guard hasActivityPrior else { return }
        let d = dimension
        for r in 0..<n { out[r * d + d - 1] = value }
    }

    public func ipEmbedding(_ ip: IPAddress) -> [Float] {
        let out = FloatBuffer(count: dimension), scratch = FloatBuffer(count: dimension)
        withUnsafePointer(to: ip) { encode(UnsafeBufferPointer(start: $0, count: 1), into: out.pointer, scratch: scratch.pointer) }
        return out.array
    }

    public func entityEmbedding(_ entity: String) -> [Float] {
        Array(UnsafeBufferPointer(start: entityVector(row: entityRow(entity)), count: dimension))
    }

    public func score(entity: String, ip: IPAddress) -> Float {
        let v = ipEmbedding(ip)
        return v.withUnsafeBufferPointer { Kernels.dot(entityVector(row: entityRow(entity)), $0.baseAddress!, dimension) }
    }
}
