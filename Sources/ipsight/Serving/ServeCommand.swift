import ArgumentParser
import Dispatch
import Foundation
import CoreMetrics
import IPInsights
import Observability
import Server

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over HTTP with the SageMaker hosting contract.",
        discussion: """
        Routes: GET /ping, POST /invocations (text/csv, application/json, application/jsonlines in;
        application/json or application/jsonlines[;verbose=True] out), GET /execution-parameters,
        GET /metrics (Prometheus text). SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6) limits the body.
        The model is reloaded without dropping a request when its file changes or on SIGHUP;
        a corrupt new file is refused and the old model keeps serving.
        Examples:
          ipsight serve --model model.ipsight
          curl -s -H 'Content-Type: text/csv' --data-binary 'user_1,192.0.2.1' localhost:8080/invocations
          ipsight serve --model model.ipsight --host 0.0.0.0 --token-file /etc/ipsight/token
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "Address to listen on; another than loopback needs --token-file.") var host: String = "127.0.0.1"
    @Option(help: "Port to listen on.") var port: Int = 8080
    @Option(help: "File holding the bearer token every route but /ping requires.") var tokenFile: String?
    @Option(help: "MaxConcurrentTransforms advertised by /execution-parameters (default: the number of cores).")
    var maxConcurrentTransforms: Int?
    @Option(help: "Seconds between checks of the model file for a new version.") var pollInterval: Double = 1

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        guard pollInterval > 0 else { throw ValidationError("--poll-interval must be positive") }
        if let n = maxConcurrentTransforms, n < 1 { throw ValidationError("--max-concurrent-transforms must be at least 1") }
        if !ServerConfiguration.isLoopback(host) && tokenFile == nil {
            throw ValidationError("listening on \(host), which is not loopback, needs --token-file")
        }
    }

    func run() throws {
        var configuration = ServerConfiguration(host: host, port: port, pollInterval: pollInterval)
        do {
            configuration.maxPayloadInMB = try ServerConfiguration.maxPayloadInMB(environment: ProcessInfo.processInfo.environment)
            if let tokenFile { configuration.token = try ServerConfiguration.readToken(path: tokenFile) }
        } catch {
            throw ValidationError(error.description)
        }
        if let maxConcurrentTransforms { configuration.maxConcurrentTransforms = maxConcurrentTransforms }
        // One registry for the process, which /metrics renders.
        let metrics = PrometheusMetrics(help: ServerMetrics.help, timerBuckets: ServerMetrics.timerBuckets)
        MetricsSystem.bootstrap(metrics.factory)
        let store = try ModelStore(path: model, metrics: ServerMetrics(factory: metrics.factory))
        let watcher = ModelWatcher(store: store)
        watcher.start(pollInterval: configuration.pollInterval)
        let app = buildServingApplication(store: store, metrics: metrics, configuration: configuration)
        Console.error("ipsight serve: \(model) on http://\(host):\(port)")
        // The server runs on the concurrency pool until SIGTERM or SIGINT.
        defer { watcher.stop() }
        try runBlocking { try await app.runService() }
    }
}
