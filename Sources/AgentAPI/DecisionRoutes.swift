import IPSightCore
import Agent
import Dispatch
import Hummingbird
import IPInsights
import IPInsightsFormats
import NIOCore
import Observability
import Rules
import Server
import SQLiteStore

/// The agent's own routes: decisions for a login about to happen, feedback on
/// past ones, status, a retraining on demand, and the metrics.
struct DecisionRoutes: Sendable {
    let agent: AgentRuntime
    /// The config the API started with: the pipeline's own may be replaced by a
    /// reload on its thread, and the paths used here change only on restart anyway.
    let config: AgentConfig
    let metrics: ServerMetrics
    let exposition: PrometheusMetrics
    /// Requests to these routes are small JSON objects.
    static let maxBody = 64 * 1024

    /// The paths these routes serve, for `RequestMetricsMiddleware`.
    static let paths: Set<String> = ["/v1/decide", "/v1/feedback", "/v1/status", "/v1/retrain", "/metrics"]

    func add(to router: Router<BasicRequestContext>) {
        router.post("/v1/decide") { request, _ in try await decide(request) }
        router.post("/v1/feedback") { request, _ in try await feedback(request) }
        router.get("/v1/status") { _, _ in json(status()) }
        router.post("/v1/retrain") { _, _ in
            agent.retrainer.retrainNow()
            return json(.object([("status", .string("a retraining starts now in the background"))]), status: .accepted)
        }
        router.get("/metrics") { _, _ in
            // The gauges known only now, then the registry the whole agent records into.
            let served = DetectorModel(detector: agent.detector, path: config.resolvedModelPath).serving
            let (logins, entities) = agent.detector.memorySize
            metrics.observe(model: served)
            agent.stats.observe(logins: logins, entities: entities, modelAge: served.map { max(0, Clock.wall - $0.fileModified) })
            return ServingRoutes<BasicRequestContext>.prometheus(exposition.text())
        }
    }

    /// `{"user": ..., "ip": ..., "service": ...}` → the decision with its reasons.
    func decide(_ request: Request) async throws -> Response {
        let body = try await object(request)
        let (user, ip) = try login(body)
        let service = try optionalString(body, "service") ?? "sshd"
        let event = LoginEvent(time: nil, host: nil, service: service, outcome: .success, user: user, ip: ip,
                               port: nil, method: nil, rule: "api")
        guard let verdict = agent.detector.decide(event) else {
            throw HTTPError(.badRequest, message: "nothing to decide about")
        }
        agent.stats.recordAPIDecision(verdict.decision)
        return json(.object([
            ("decision", .string(verdict.decision.rawValue)),
            ("reason", .string(verdict.reason)),
            ("risk", verdict.risk.map(JSONValue.number) ?? .null),
            ("dot_product", verdict.dotProduct.map(JSONValue.number) ?? .null),
            ("summary", .string(verdict.summary)),
            ("reasons", .array(verdict.reasons.map { .array([.string($0.0), .string($0.1)]) })),
        ]))
    }

    /// `{"user": ..., "ip": ..., "verdict": "legitimate" | "compromised"}`: a
    /// legitimate login joins the history the next retraining learns from; a
    /// compromised one leaves it, so the address is unusual for the user again.
    func feedback(_ request: Request) async throws -> Response {
        let body = try await object(request)
        let (user, ip) = try login(body)
        let service = try optionalString(body, "service") ?? "sshd"
        guard let text = try optionalString(body, "verdict"), let verdict = FeedbackVerdict(rawValue: text) else {
            throw HTTPError(.badRequest, message: "'verdict' must be \"legitimate\" or \"compromised\"")
        }
        let agent = self.agent, config = self.config
        // SQLite and, for a compromise, rebuilding the memory: off the request threads.
        let result: Result<FeedbackOutcome, SQLiteError> = await ServingRoutes<BasicRequestContext>.offload {
            Result { () throws(SQLiteError) -> FeedbackOutcome in
                try ObservationStore(path: config.databasePath).apply(verdict, user: user, ip: ip, service: service,
                                                                     detector: agent.detector, retention: config.retention)
            }
        }
        let outcome = try result.mapError { HTTPError(.internalServerError, message: "the store: \($0)") }.get()
        agent.logger.notice("feedback: \(user) from \(ip) is \(verdict.rawValue) (\(outcome.changed) stored logins changed\(outcome.added ? ", one added" : ""))")
        return json(.object([
            ("user", .string(user)), ("ip", .string(ip)), ("verdict", .string(verdict.rawValue)),
            ("logins_changed", .number(Double(outcome.changed))), ("login_added", .bool(outcome.added)),
        ]))
    }

    func status() -> JSONValue {
        let s = agent.stats.snapshot
        let (logins, entities) = agent.detector.memorySize
        var model: JSONValue = .null
        if let served = DetectorModel(detector: agent.detector, path: config.resolvedModelPath).serving {
            model = .object([
                ("path", .string(config.resolvedModelPath)),
                ("age_seconds", .number((Clock.wall - served.fileModified).rounded())),
                ("installed_at", .number(served.loadedAt.rounded())),
                ("calibrated", .bool(agent.detector.calibration != nil)),
                // The table the risk in force was fitted with (a reload may change it).
                ("routed_networks", agent.detector.calibration?.networks.map {
                    .object([("path", .string($0.path)), ("networks", .number(Double($0.networks.count)))])
                } ?? .null),
            ])
        }
        var delivery: JSONValue = .null
        if let d = agent.delivery {
            delivery = .object([("delivered", .number(Double(d.delivered))), ("retried", .number(Double(d.retried))),
                                ("dropped", .number(Double(d.dropped))), ("overflowed", .number(Double(d.overflowed))),
                                ("folded", .number(Double(d.folded))), ("claimed_elsewhere", .number(Double(d.claimedElsewhere))),
                                ("queued", .number(Double(d.queued)))])
        }
        let lag: JSONValue = s.lagTotal == 0 ? .null : .number(s.lagSum / Double(s.lagTotal))
        return .object([
            ("uptime_seconds", .number((Clock.wall - s.startedAt).rounded())),
            ("login_events", .number(Double(s.events))),
            ("skipped_input", .number(Double(s.skipped.tooLong + s.skipped.binary))),
            ("decisions", .object(s.decisions.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
            ("alerts", .number(Double(s.alerts))),
            ("mean_decision_lag_seconds", lag),
            ("history", .object([("logins", .number(Double(logins))), ("entities", .number(Double(entities)))])),
            ("model", model),
            ("retrains", .object([("installed", .number(Double(s.retrains.installed))),
                                  ("kept_out", .number(Double(s.retrains.keptOut))),
                                  ("failed", .number(Double(s.retrains.failed)))])),
            ("alert_delivery", delivery),
            // Sharing with the fleet's database; null without a [fleet] section.
            ("fleet", agent.fleet?.json() ?? .null),
            ("state_dir", .string(config.stateDirectory)),
        ])
    }

    // MARK: Request bodies

    private func object(_ request: Request) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: Self.maxBody)
        } catch is NIOTooManyBytesError {
            throw HTTPError(.contentTooLarge, message: "the body is larger than \(Self.maxBody) bytes")
        }
        let value: JSONValue
        do {
            value = try buffer.withUnsafeReadableBytes { bytes throws(JSONError) in try JSONValue.parse(bytes) }
        } catch {
            throw HTTPError(.badRequest, message: "the body is not JSON: \(error)")
        }
        guard value.objectValue != nil else { throw HTTPError(.badRequest, message: "the body must be a JSON object") }
        return value
    }

    private func login(_ body: JSONValue) throws -> (user: String, ip: String) {
        guard let user = body["user"]?.stringValue, !user.isEmpty else {
            throw HTTPError(.badRequest, message: "'user' must be a non-empty string")
        }
        guard let ipText = body["ip"]?.stringValue else { throw HTTPError(.badRequest, message: "'ip' must be a string") }
        guard let ip = IPAddress(ipText) else {
            throw HTTPError(.badRequest, message: "'\(ipText)' is not an IPv4 or IPv6 address")
        }
        return (user, ip.description)
    }

    private func optionalString(_ body: JSONValue, _ key: String) throws -> String? {
        guard let value = body[key], value != .null else { return nil }
        guard let text = value.stringValue, !text.isEmpty else {
            throw HTTPError(.badRequest, message: "'\(key)' must be a non-empty string")
        }
        return text
    }
}

func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(1024)
    JSONWriter.append(value, to: &bytes)
    bytes.append(0x0A)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}
