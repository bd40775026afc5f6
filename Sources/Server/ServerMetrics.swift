import Foundation

/// Request counts, latencies and pairs scored, kept by the server itself and
/// written in the Prometheus text exposition format.
public final class ServerMetrics: @unchecked Sendable {
    /// Upper bounds (seconds) of the latency histogram's buckets.
    public static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    struct Key: Hashable, Comparable {
        var route: String
        var status: Int
        static func < (a: Key, b: Key) -> Bool { (a.route, a.status) < (b.route, b.status) }
    }

    struct Histogram {
        var counts = [Int](repeating: 0, count: ServerMetrics.buckets.count)
        var total = 0
        var sum = 0.0
    }

    private let lock = NSLock()
    private var requests: [Key: Int] = [:]
    private var latency: [String: Histogram] = [:]
    private var pairs = 0

    public init() {}

    public func recordRequest(route: String, status: Int, seconds: Double) {
        lock.withLock {
            requests[Key(route: route, status: status), default: 0] += 1
            var h = latency[route] ?? Histogram()
            if let k = ServerMetrics.buckets.firstIndex(where: { seconds <= $0 }) { h.counts[k] += 1 }
            h.total += 1
            h.sum += seconds
            latency[route] = h
        }
    }

    public func recordPairs(_ n: Int) {
        lock.withLock { pairs += n }
    }

    public var pairsScored: Int { lock.withLock { pairs } }

    public func requestCount(route: String, status: Int) -> Int {
        lock.withLock { requests[Key(route: route, status: status)] ?? 0 }
    }

    /// The exposition text, with the serving model's figures.
    public func render(model: LoadedModel?, reloads: (succeeded: Int, refused: Int), now: Double = Date().timeIntervalSince1970) -> String {
        let (requests, latency, pairs) = lock.withLock { (self.requests, self.latency, self.pairs) }
        var out = ""
        out += "# HELP ipsight_http_requests_total HTTP requests answered, by route and status.\n"
        out += "# TYPE ipsight_http_requests_total counter\n"
        for (key, count) in requests.sorted(by: { $0.key < $1.key }) {
            out += "ipsight_http_requests_total{route=\"\(key.route)\",status=\"\(key.status)\"} \(count)\n"
        }
        out += "# HELP ipsight_http_request_duration_seconds Time to answer a request, by route.\n"
        out += "# TYPE ipsight_http_request_duration_seconds histogram\n"
        for (route, h) in latency.sorted(by: { $0.key < $1.key }) {
            var cumulative = 0
            for (k, bound) in ServerMetrics.buckets.enumerated() {
                cumulative += h.counts[k]
                out += "ipsight_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"\(number(bound))\"} \(cumulative)\n"
            }
            out += "ipsight_http_request_duration_seconds_bucket{route=\"\(route)\",le=\"+Inf\"} \(h.total)\n"
            out += "ipsight_http_request_duration_seconds_sum{route=\"\(route)\"} \(number(h.sum))\n"
            out += "ipsight_http_request_duration_seconds_count{route=\"\(route)\"} \(h.total)\n"
        }
        out += "# HELP ipsight_pairs_scored_total (entity, ip) pairs scored by /invocations.\n"
        out += "# TYPE ipsight_pairs_scored_total counter\n"
        out += "ipsight_pairs_scored_total \(pairs)\n"
        guard let model else { return out }
        out += "# HELP ipsight_model_age_seconds Seconds since the serving model's file was written.\n"
        out += "# TYPE ipsight_model_age_seconds gauge\n"
        out += "ipsight_model_age_seconds \(number(max(0, now - model.fileModified)))\n"
        out += "# HELP ipsight_model_load_seconds How long loading the serving model took.\n"
        out += "# TYPE ipsight_model_load_seconds gauge\n"
        out += "ipsight_model_load_seconds \(number(model.loadSeconds))\n"
        out += "# HELP ipsight_model_loaded_timestamp_seconds When the serving model was loaded (Unix time).\n"
        out += "# TYPE ipsight_model_loaded_timestamp_seconds gauge\n"
        out += "ipsight_model_loaded_timestamp_seconds \(number(model.loadedAt))\n"
        out += "# HELP ipsight_model_reloads_total Model reloads since start, by result.\n"
        out += "# TYPE ipsight_model_reloads_total counter\n"
        out += "ipsight_model_reloads_total{result=\"loaded\"} \(reloads.succeeded)\n"
        out += "ipsight_model_reloads_total{result=\"refused\"} \(reloads.refused)\n"
        return out
    }

    private func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
