import CKernels
/// A trained (or initialised) IP Insights model.
///
/// score(entity, ip) = entity_embedding · ip_embedding, the log odds that the
/// pair comes from real traffic rather than from the negative-sample distribution.
/// - entity_embedding: row `hash(entity) mod num_entity_vectors` of the entity table.
/// - ip_embedding: the encoder's output. Its input is the sum of the address's
///   prefix and byte rows (see `IPEncoderLayout`); then `num_ip_encoder_layers`
///   fully connected layers, each residual, `x ← x + tanh(W x + b)`, so that
///   stacking layers never loses what the prefix rows say and deep encoders train.
public final class Model: @unchecked Sendable {
    public let hyperparameters: Hyperparameters
    public let layout: IPEncoderLayout
    public var dimension: Int { hyperparameters.vectorDim }
    public var layerCount: Int { hyperparameters.numIPEncoderLayers }

    public let entityTable: FloatBuffer      // num_entity_vectors × d
    public let ipTable: FloatBuffer          // layout.rows × d
    public let weights: [FloatBuffer]        // per layer, d × d (row = output unit)
    public let biases: [FloatBuffer]         // per layer, d

    /// Positive pairs seen in training, over the model's whole history (warm starts add up).
    public var trainedPairs: Int = 0
    public var trainedEpochs: Int = 0

    public init(hyperparameters: Hyperparameters, layout: IPEncoderLayout? = nil) {
        self.hyperparameters = hyperparameters
        let d = hyperparameters.vectorDim
        self.layout = layout ?? IPEncoderLayout(buckets: IPEncoderLayout.defaultBuckets(numEntityVectors: hyperparameters.numEntityVectors))
        entityTable = FloatBuffer(count: hyperparameters.numEntityVectors * d)
        ipTable = FloatBuffer(count: self.layout.rows * d)
        weights = (0..<hyperparameters.numIPEncoderLayers).map { _ in FloatBuffer(count: d * d) }
        biases = (0..<hyperparameters.numIPEncoderLayers).map { _ in FloatBuffer(count: d) }
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
