/// The IP Insights hyperparameters, with the names, defaults and valid ranges of
/// the SageMaker specification. Values arrive as strings (SageMaker's API takes a
/// string-to-string map), are checked against their range, and unknown names are
/// refused so a typo never silently trains with a default.
public struct Hyperparameters: Sendable, Equatable {
    public var numEntityVectors: Int
    public var vectorDim: Int
    public var batchMetricsPublishInterval: Int = 1000
    public var epochs: Int = 10
    public var learningRate: Double = 0.001
    public var miniBatchSize: Int = 10_000
    public var numIPEncoderLayers: Int = 1
    public var randomNegativeSamplingRate: Int = 1
    public var shuffledNegativeSamplingRate: Int = 1
    public var weightDecay: Double = 0.00001

    public init(numEntityVectors: Int, vectorDim: Int) {
        self.numEntityVectors = numEntityVectors
        self.vectorDim = vectorDim
    }

    /// What one hyperparameter accepts.
    public struct Spec: Sendable {
        public enum Kind: Sendable { case integer, float }
        public let name: String
        public let kind: Kind
        public let minimum: Double
        public let maximum: Double?
        public let defaultValue: String?   // nil: required
        nonisolated(unsafe) let keyPath: WritableKeyPath<Hyperparameters, Double>  // immutable, never shared mutably

        public var rangeDescription: String {
            let type = kind == .integer ? "integer" : "float"
            let lo = Spec.format(minimum, kind)
            if let maximum { return "\(lo) ≤ \(type) ≤ \(Spec.format(maximum, kind))" }
            return "\(type) ≥ \(lo)"
        }

        public static func format(_ v: Double, _ kind: Kind) -> String {
            if kind == .integer { return String(Int(v)) }
            if v != 0, abs(v) < 1e-3 { return "\(v)" }
            return v == v.rounded() ? String(format1: v) : "\(v)"
        }
    }

    public static let specs: [Spec] = [
        Spec(name: "num_entity_vectors", kind: .integer, minimum: 1, maximum: 250_000_000, defaultValue: nil, keyPath: \.numEntityVectorsD),
        Spec(name: "vector_dim", kind: .integer, minimum: 4, maximum: 4096, defaultValue: nil, keyPath: \.vectorDimD),
        Spec(name: "batch_metrics_publish_interval", kind: .integer, minimum: 1, maximum: nil, defaultValue: "1000", keyPath: \.batchMetricsPublishIntervalD),
        Spec(name: "epochs", kind: .integer, minimum: 1, maximum: nil, defaultValue: "10", keyPath: \.epochsD),
        Spec(name: "learning_rate", kind: .float, minimum: 1e-6, maximum: 10.0, defaultValue: "0.001", keyPath: \.learningRate),
        Spec(name: "mini_batch_size", kind: .integer, minimum: 1, maximum: 500_000, defaultValue: "10000", keyPath: \.miniBatchSizeD),
        Spec(name: "num_ip_encoder_layers", kind: .integer, minimum: 0, maximum: 100, defaultValue: "1", keyPath: \.numIPEncoderLayersD),
        Spec(name: "random_negative_sampling_rate", kind: .integer, minimum: 0, maximum: 500, defaultValue: "1", keyPath: \.randomNegativeSamplingRateD),
        Spec(name: "shuffled_negative_sampling_rate", kind: .integer, minimum: 0, maximum: 500, defaultValue: "1", keyPath: \.shuffledNegativeSamplingRateD),
        Spec(name: "weight_decay", kind: .float, minimum: 0.0, maximum: 10.0, defaultValue: "0.00001", keyPath: \.weightDecay),
    ]

    public static func spec(named name: String) -> Spec? { specs.first { $0.name == name } }

    /// Builds hyperparameters from SageMaker-style string values. Every problem is
    /// reported at once, each naming the parameter and its valid range.
    public init(strings: [String: String]) throws(HyperparameterError) {
        var problems: [String] = []
        for name in strings.keys.sorted() where Hyperparameters.spec(named: name) == nil {
            let known = Hyperparameters.specs.map(\.name).joined(separator: ", ")
            problems.append("unknown hyperparameter '\(name)' (known: \(known))")
        }
        var result = Hyperparameters(numEntityVectors: 0, vectorDim: 0)
        for spec in Hyperparameters.specs {
            guard let text = strings[spec.name] ?? spec.defaultValue else {
                problems.append("\(spec.name) is required (valid: \(spec.rangeDescription))")
                continue
            }
            let trimmed = text.trimmingBlanks()
            let value: Double?
            switch spec.kind {
            case .integer: value = Int(trimmed).map(Double.init)
            case .float: value = Double(trimmed).flatMap { $0.isFinite ? $0 : nil }
            }
            guard let value else {
                let type = spec.kind == .integer ? "an integer" : "a number"
                problems.append("\(spec.name)='\(text)' is not \(type) (valid: \(spec.rangeDescription))")
                continue
            }
            if value < spec.minimum || (spec.maximum.map { value > $0 } ?? false) {
                problems.append("\(spec.name)=\(text) is out of range (valid: \(spec.rangeDescription))")
                continue
            }
            result[keyPath: spec.keyPath] = value
        }
        if problems.isEmpty {
            let total = result.randomNegativeSamplingRate + result.shuffledNegativeSamplingRate
            if total < 1 || total > 500 {
                problems.append("random_negative_sampling_rate + shuffled_negative_sampling_rate = \(total) (valid: 1 ≤ R + S ≤ 500)")
            }
        }
        if !problems.isEmpty { throw HyperparameterError(problems: problems) }
        self = result
    }

    /// Checks a value built in code against the same ranges.
    public func validated() throws(HyperparameterError) -> Hyperparameters {
        try Hyperparameters(strings: strings)
    }

    /// The values as SageMaker-style strings, in the specification's order.
    public var strings: [String: String] {
        var out: [String: String] = [:]
        for spec in Hyperparameters.specs {
            let v = self[keyPath: spec.keyPath]
            out[spec.name] = spec.kind == .integer ? String(Int(v)) : "\(v)"
        }
        return out
    }

    public var orderedStrings: [(String, String)] {
        let s = strings
        return Hyperparameters.specs.map { ($0.name, s[$0.name]!) }
    }

    // Double views of the integer fields, so one table of key paths drives parsing.
    var numEntityVectorsD: Double { get { Double(numEntityVectors) } set { numEntityVectors = Int(newValue) } }
    var vectorDimD: Double { get { Double(vectorDim) } set { vectorDim = Int(newValue) } }
    var batchMetricsPublishIntervalD: Double { get { Double(batchMetricsPublishInterval) } set { batchMetricsPublishInterval = Int(newValue) } }
    var epochsD: Double { get { Double(epochs) } set { epochs = Int(newValue) } }
    var miniBatchSizeD: Double { get { Double(miniBatchSize) } set { miniBatchSize = Int(newValue) } }
    var numIPEncoderLayersD: Double { get { Double(numIPEncoderLayers) } set { numIPEncoderLayers = Int(newValue) } }
    var randomNegativeSamplingRateD: Double { get { Double(randomNegativeSamplingRate) } set { randomNegativeSamplingRate = Int(newValue) } }
    var shuffledNegativeSamplingRateD: Double { get { Double(shuffledNegativeSamplingRate) } set { shuffledNegativeSamplingRate = Int(newValue) } }
}

public struct HyperparameterError: Error, CustomStringConvertible, Equatable {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

extension String {
    init(format1 v: Double) {
        self = v == v.rounded() && abs(v) < 1e15 ? "\(Int64(v)).0" : "\(v)"
    }
}
