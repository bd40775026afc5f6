import IPSightCore
import Foundation
import Hummingbird
import HummingbirdTesting
import IPInsights
import IPInsightsFormats
import Observability
import Testing
@testable import Server

/// Small models and a live server on an ephemeral loopback port for each test.
enum Support {
    static func model(seed: UInt64) throws -> Model {
        var hp = Hyperparameters(numEntityVectors: 64, vectorDim: 8)
        hp.numIPEncoderLayers = 1
        let model = Model(hyperparameters: try hp.validated(), layout: IPEncoderLayout(buckets: 128))
        model.initialise(seed: seed)
        return model
    }

    static func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "ipsight-server-\(getpid())-\(UUID().uuidString)-\(name)"
    }

    /// Saves a model with `seed` to a fresh path and returns both.
    static func savedModel(seed: UInt64) throws -> (path: String, model: Model) {
        let path = temporaryPath("model.ipsight")
        let model = try model(seed: seed)
        try ModelFile.save(model, to: path)
        return (path, model)
    }

    /// Threads for the live servers and clients of these tests. The runner's
    /// synchronous tests (journald, processes) hold the shared pool's threads for
    /// seconds at a time; a client waiting for one hit its 15 s read timeout.
    static let threads = DedicatedThreads(count: 2, name: "server-tests")

    /// Runs `body` against a live server for the model at `path`.
    static func withServer<Value: Sendable>(
        modelPath: String, configuration: ServerConfiguration = ServerConfiguration(),
        _ body: @Sendable (any TestClientProtocol, ModelStore, PrometheusMetrics) async throws -> Value
    ) async throws -> Value {
        // A registry of the test's own: one name registered twice differently stops the process.
        let metrics = PrometheusMetrics(help: ServerMetrics.help, timerBuckets: ServerMetrics.timerBuckets)
        let store = try ModelStore(path: modelPath, log: { _ in }, metrics: ServerMetrics(factory: metrics.factory))
        let app = buildServingApplication(store: store, metrics: metrics, configuration: configuration)
        return try await withTaskExecutorPreference(threads) {
            try await app.test(.live) { client in try await body(client, store, metrics) }
        }
    }

    static func json(_ buffer: ByteBuffer) throws -> JSONValue {
        let bytes = Array(buffer: buffer)
        return try bytes.withUnsafeBytes { raw in try JSONValue.parse(raw) }
    }

    static func jsonLines(_ buffer: ByteBuffer) throws -> [JSONValue] {
        try String(buffer: buffer).split(separator: "\n").map { line in
            try Array(line.utf8).withUnsafeBytes { raw in try JSONValue.parse(raw) }
        }
    }

    /// The `dot_product` of every prediction, whichever response layout.
    static func dotProducts(_ predictions: [JSONValue]) -> [Double] {
        predictions.compactMap { $0["dot_product"]?.numberValue }
    }

    static func keys(_ value: JSONValue) -> [String] {
        value.objectValue?.map(\.0) ?? []
    }

    /// Polls `condition` every 50 ms for at most `seconds`.
    static func eventually(within seconds: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    static func post(_ client: any TestClientProtocol, _ body: String, contentType: String?, accept: String? = nil,
                     headers extra: HTTPFields = [:]) async throws -> TestResponse {
        var headers = extra
        if let contentType { headers[.contentType] = contentType }
        if let accept { headers[.accept] = accept }
        return try await client.execute(uri: "/invocations", method: .post, headers: headers, body: ByteBuffer(string: body))
    }
}
