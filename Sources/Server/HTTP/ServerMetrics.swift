import CoreMetrics
import Foundation
import Synchronization

/// The hosting contract's figures, recorded through swift-metrics: requests and
/// their latency by route, pairs scored, model reloads, and the serving model.
public final class ServerMetrics: Sendable {
    /// Upper bounds (seconds) of the latency histogram's buckets.
    public static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// The help text of every metric recorded here, by name, for the exposition.
    public static let help: [String: String] = [
        "ipsight_http_requests_total": "HTTP requests answered, by route and status.",
        "ipsight_http_request_duration_seconds": "Time to answer a request, by route.",
        "ipsight_pairs_scored_total": "(entity, ip) pairs scored by /invocations.",
        "ipsight_model_age_seconds": "Seconds since the serving model's file was written.",
        "ipsight_model_load_seconds": "How long loading the serving model took.",
        "ipsight_model_loaded_timestamp_seconds": "When the serving model was loaded (Unix time).",
        "ipsight_model_reloads_total": "Model reloads since start, by result.",
    ]
    public static let timerBuckets = ["ipsight_http_request_duration_seconds": buckets]

    private struct RequestKey: Hashable {
        var route: String
        var status: Int
    }

    /// The model's gauges, made with the first model: without one there is nothing to report.
    private struct ModelGauges {
        let age, load, loadedAt: Gauge
    }

    private let factory: any MetricsFactory
    private let requests = Mutex<[RequestKey: Counter]>([:])
    private let durations = Mutex<[String: CoreMetrics.Timer]>([:])
    private let pairs: Counter
    private let reloadsLoaded: Counter
    private let reloadsRefused: Counter
    private let model = Mutex<ModelGauges?>(nil)

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        pairs = Counter(label: "ipsight_pairs_scored_total", factory: factory)
        reloadsLoaded = Counter(label: "ipsight_model_reloads_total", dimensions: [("result", "loaded")], factory: factory)
        reloadsRefused = Counter(label: "ipsight_model_reloads_total", dimensions: [("result", "refused")], factory: factory)
    }

    public func recordRequest(route: String, status: Int, seconds: Double) {
        let key = RequestKey(route: route, status: status)
        // The handles are kept: making one looks the name up in the registry under its lock.
        let counter = requests.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "ipsight_http_requests_total",
                                  dimensions: [("route", route), ("status", String(status))], factory: factory)
            counters[key] = counter
            return counter
        }
        let timer = durations.withLock { timers in
            if let timer = timers[route] { return timer }
            let timer = CoreMetrics.Timer(label: "ipsight_http_request_duration_seconds", dimensions: [("route", route)],
                                          factory: factory)
            timers[route] = timer
            return timer
        }
        counter.increment()
        timer.recordSeconds(seconds)
    }

    public func recordPairs(_ n: Int) {
        pairs.increment(by: n)
    }

    /// A reload of the model file: `loaded` when the new model serves, else refused.
    public func recordReload(loaded: Bool) {
        (loaded ? reloadsLoaded : reloadsRefused).increment()
    }

    /// Sets the model's gauges from the model serving now; called before each exposition.
    public func observe(model served: LoadedModel?, now: Double = Date().timeIntervalSince1970) {
        guard let served else { return }
        let gauges = model.withLock { gauges in
            if let gauges { return gauges }
            let made = ModelGauges(age: Gauge(label: "ipsight_model_age_seconds", factory: factory),
                                   load: Gauge(label: "ipsight_model_load_seconds", factory: factory),
                                   loadedAt: Gauge(label: "ipsight_model_loaded_timestamp_seconds", factory: factory))
            gauges = made
            return made
        }
        gauges.age.record(max(0, now - served.fileModified))
        gauges.load.record(served.loadSeconds)
        gauges.loadedAt.record(served.loadedAt)
    }
}
