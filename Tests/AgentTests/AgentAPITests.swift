import AgentClient
import TestSupport
import IPSightCore
import Foundation
import IPInsights
import IPInsightsFormats
import Observability
import Server
import Testing
@testable import Agent
@testable import AgentAPI

/// The agent's HTTP API in process, over a real Unix socket and loopback TCP,
/// with a real store: decisions, feedback reaching the retraining window,
/// metrics, status and the bearer token.
@Suite(.serialized) struct AgentAPITests {
    /// An agent with a model, calibrated on 300 stored logins, and its API.
    final class Running {
        let dir = TemporaryDirectory()
        let agent: AgentRuntime
        let api: AgentAPI
        /// The test's own registry, as `ipsight run` has one for the process.
        let metrics = PrometheusMetrics(help: AgentStats.help.merging(ServerMetrics.help) { a, _ in a },
                                        timerBuckets: AgentStats.timerBuckets.merging(ServerMetrics.timerBuckets) { a, _ in a })
        var socket: String { dir.file("api.sock") }

        init(token: String? = nil, connectionLimit: Int = 256, headTimeout: Double = 10) throws {
            var config = AgentConfig()
            config.stateDirectory = dir.path
            config.rulesDirectory = Paths.rules
            config.journal = false
            config.files = [dir.file("auth.log")]
            config.retention = 3650 * 86_400
            config.apiSocket = dir.file("api.sock")
            if let token {
                // TCP is only ever served with a token.
                config.apiListen = .init(host: "127.0.0.1", port: 0)
                dir.write("token", token + "\n")
                config.apiTokenFile = dir.file("token")
            }
            try ModelFile.save(Synthetic.model(), to: config.resolvedModelPath)
            let now = Clock.wall
            let observations = Synthetic.observations(300).enumerated().map { k, o in
                Observation(time: now - Double(300 - k) * 60, user: o.user, ip: o.ip, service: o.service)
            }
            try ObservationStore(path: config.databasePath).commit(observations, positions: [:])
            agent = try AgentRuntime(config: config, configPath: nil, router: CollectingAlertRouter(), logger: .discarding,
                                     metrics: metrics.factory)
            api = AgentAPI(agent: agent, config: config, metrics: metrics, connectionLimit: connectionLimit, headTimeout: headTimeout)
            try api.start()
        }

        var tcpPort: Int {
            let http = api.addresses.first { $0.hasPrefix("http://") }!
            return Int(http.split(separator: ":").last!)!
        }

        func request(_ method: String, _ path: String, _ body: String? = nil, tcp: Bool = false, token: String? = nil) throws -> (Int, JSONValue?) {
            let endpoint: AgentClient.Endpoint = tcp ? .tcp(host: "127.0.0.1", port: tcpPort) : .unix(socket)
            let reply = try AgentClient(endpoint: endpoint, timeout: 20, token: token).request(method, path, json: body.map { Array($0.utf8) })
            return (reply.status, try? JSONValue.parse(reply.body))
        }

        func text(_ path: String) throws -> String {
            String(decoding: try AgentClient(endpoint: .unix(socket), timeout: 20).request("GET", path).body, as: UTF8.self)
        }

        deinit {
            api.stop()
            dir.remove()
        }
    }

    @Test func decisionsComeWithReasonsAndAreCounted() throws {
        let running = try Running(token: "s3cret")
        var rng = SeededRandom(seed: 11)
        let home = Synthetic.address("alice", &rng)
        let (okStatus, ok) = try running.request("POST", "/v1/decide", #"{"user": "alice", "ip": "\#(home)", "service": "sshd"}"#)
        #expect(okStatus == 200)
        #expect(ok?["decision"]?.stringValue == "allow", "\(String(describing: ok))")
        let (_, away) = try running.request("POST", "/v1/decide", #"{"user": "alice", "ip": "203.0.113.50"}"#, tcp: true, token: "s3cret")
        #expect(away?["decision"]?.stringValue == "alert")
        #expect(away?["reason"]?.stringValue == "risk")
        let reasons = away?["reasons"]?.arrayValue?.compactMap { $0.arrayValue?.first?.stringValue } ?? []
        #expect(reasons.contains("nearest known network") && reasons.contains("first seen"), "\(reasons)")
        #expect((away?["risk"]?.numberValue ?? 0) >= 0.99)

        let (badStatus, bad) = try running.request("POST", "/v1/decide", #"{"user": "alice", "ip": "300.1.1.1"}"#)
        #expect(badStatus == 400)
        #expect(bad?["error"]?["message"]?.stringValue == "'300.1.1.1' is not an IPv4 or IPv6 address")
        #expect(try running.request("POST", "/v1/decide", #"{"ip": "192.0.2.1"}"#).0 == 400)
        #expect(try running.request("POST", "/v1/decide", "[1, 2").0 == 400)
        let huge = #"{"user": ""# + String(repeating: "x", count: 2_000_000) + #"", "ip": "192.0.2.1"}"#
        #expect(try running.request("POST", "/v1/decide", huge).0 == 413)

        let metrics = try running.text("/metrics")
        #expect(metrics.contains(#"ipsight_decisions_total{origin="api",decision="alert"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"ipsight_decisions_total{origin="api",decision="allow"} 1"#))
        #expect(metrics.contains(#"ipsight_http_requests_total{route="/v1/decide",status="400"} 3"#))
        #expect(Exposition.value("ipsight_history_logins", in: metrics) == 300)
        let (_, status) = try running.request("GET", "/v1/status")
        #expect(status?["history"]?["entities"]?.numberValue == Double(Synthetic.users.count))
        #expect(status?["model"]?["calibrated"] == .bool(true))
        // The hosting contract on the agent's own model.
        let reply = try AgentClient(endpoint: .unix(running.socket), timeout: 20).request("GET", "/ping")
        #expect(reply.status == 200)
    }

    /// The names dashboards and alerting rules already use, with their types and help,
    /// on the agent's `/metrics` (remote delivery's are checked in WebhookDeliveryTests).
    @Test func theMetricNamesUsersScrapeAreKept() throws {
        let running = try Running()
        _ = try running.request("POST", "/v1/decide", #"{"user": "alice", "ip": "203.0.113.50"}"#)
        let text = try running.text("/metrics")
        let kept = [
            ("ipsight_uptime_seconds", "gauge"), ("ipsight_login_events_total", "counter"),
            ("ipsight_decisions_total", "counter"), ("ipsight_skipped_input_total", "counter"),
            ("ipsight_unread_rotated_files_total", "counter"), ("ipsight_alerts_total", "counter"),
            ("ipsight_decision_lag_seconds", "histogram"), ("ipsight_retrains_total", "counter"),
            ("ipsight_history_logins", "gauge"), ("ipsight_history_entities", "gauge"),
            ("ipsight_agent_model_age_seconds", "gauge"), ("ipsight_http_requests_total", "counter"),
            ("ipsight_http_request_duration_seconds", "histogram"), ("ipsight_pairs_scored_total", "counter"),
            ("ipsight_model_age_seconds", "gauge"), ("ipsight_model_load_seconds", "gauge"),
            ("ipsight_model_loaded_timestamp_seconds", "gauge"), ("ipsight_model_reloads_total", "counter"),
        ]
        for (name, type) in kept {
            #expect(Exposition.type(of: name, in: text) == type, "\(name) in \(text)")
            #expect(text.contains("# HELP \(name) "), "\(name) has its help")
        }
        // Every labelled series a rule may select exists from the start, at 0.
        for origin in ["logs", "api"] {
            for decision in Decision.allCases where !(origin == "api" && decision == .alert) {
                #expect(Exposition.value(#"ipsight_decisions_total{origin="\#(origin)",decision="\#(decision.rawValue)"}"#, in: text) == 0)
            }
        }
        #expect(Exposition.value(#"ipsight_decisions_total{origin="api",decision="alert"}"#, in: text) == 1)
        for reason in ["too_long", "binary"] {
            #expect(Exposition.value(#"ipsight_skipped_input_total{reason="\#(reason)"}"#, in: text) == 0)
        }
        for result in ["installed", "kept_out", "failed"] {
            #expect(Exposition.value(#"ipsight_retrains_total{result="\#(result)"}"#, in: text) == 0)
        }
        #expect(Exposition.value("ipsight_decision_lag_seconds_count", in: text) == 0)
        #expect((Exposition.value("ipsight_uptime_seconds", in: text) ?? -1) >= 0)
        #expect(Exposition.value("ipsight_history_entities", in: text) == Double(Synthetic.users.count))
    }

    @Test func feedbackChangesWhatTheNextRetrainingLearns() throws {
        let running = try Running()
        let before = try #require(try running.request("POST", "/v1/decide", #"{"user": "bob", "ip": "198.51.100.20"}"#).1)
        #expect(before["reasons"]?.arrayValue?.contains(.array([.string("first seen"), .string("network new for this entity")])) == true)

        let (status, answer) = try running.request("POST", "/v1/feedback", #"{"user": "bob", "ip": "198.51.100.20", "verdict": "legitimate"}"#)
        #expect(status == 200)
        #expect(answer?["login_added"] == .bool(true))
        // Told twice: the history holds it once.
        #expect(try running.request("POST", "/v1/feedback", #"{"user": "bob", "ip": "198.51.100.20", "verdict": "legitimate"}"#).1?["login_added"] == .bool(false))
        let store = try ObservationStore(path: running.agent.config.databasePath)
        let learnt = try store.observations(since: Clock.wall - 86_400 * 3650, learnedOnly: true)
        #expect(learnt.contains { $0.user == "bob" && $0.ip == "198.51.100.20" }, "the retraining window now holds it")
        let after = try #require(try running.request("POST", "/v1/decide", #"{"user": "bob", "ip": "198.51.100.20"}"#).1)
        #expect(after["reasons"]?.arrayValue?.contains { $0.arrayValue?.first == .string("first seen") } == false,
                "the address is known now: \(after)")

        // Compromised: bob's logins from there leave the history again.
        let (_, undo) = try running.request("POST", "/v1/feedback", #"{"user": "bob", "ip": "198.51.100.20", "verdict": "compromised"}"#)
        #expect(undo?["logins_changed"]?.numberValue == 1)
        let relearnt = try store.observations(since: Clock.wall - 86_400 * 3650, learnedOnly: true)
        #expect(!relearnt.contains { $0.user == "bob" && $0.ip == "198.51.100.20" })
        let again = try #require(try running.request("POST", "/v1/decide", #"{"user": "bob", "ip": "198.51.100.20"}"#).1)
        #expect(again["reasons"]?.arrayValue?.contains(.array([.string("first seen"), .string("network new for this entity")])) == true)
        #expect(try running.request("POST", "/v1/feedback", #"{"user": "bob", "ip": "198.51.100.20", "verdict": "maybe"}"#).0 == 400)
    }

    @Test func theTokenGuardsTCPButNotTheSocket() throws {
        let running = try Running(token: "s3cret")
        let body = #"{"user": "alice", "ip": "192.0.2.1"}"#
        #expect(try running.request("POST", "/v1/decide", body, tcp: true).0 == 401)
        #expect(try running.request("POST", "/v1/decide", body, tcp: true, token: "wrong").0 == 401)
        #expect(try running.request("POST", "/v1/decide", body, tcp: true, token: "s3cret").0 == 200)
        #expect(try running.request("POST", "/v1/decide", body).0 == 200, "the socket's permissions guard it")
        var info = stat()
        #expect(stat(running.socket, &info) == 0 && info.st_mode & 0o777 == 0o600)
    }

    @Test func aSecondAgentOnTheSameSocketIsRefusedAndAStaleFileReplaced() throws {
        let running = try Running()
        var config = running.agent.config
        config.apiListen = nil
        #expect(throws: AgentAPIError.self) { try AgentAPI(agent: running.agent, config: config, metrics: running.metrics).start() }
        running.api.stop()
        // A socket file nobody listens on (an agent that was killed) is replaced.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { b in for (i, c) in running.socket.utf8.enumerated() { b[i] = c } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(fd)
        #expect(FileManager.default.fileExists(atPath: running.socket))
        let fresh = AgentAPI(agent: running.agent, config: config, metrics: running.metrics)
        try fresh.start()
        #expect(try AgentClient(endpoint: .unix(running.socket), timeout: 20).request("GET", "/ping").status == 200)
        fresh.stop()
    }

    /// The API serves on threads of its own: with every thread of Swift's shared
    /// pool blocked (as a busy process may hold them), `check` is still answered.
    @Test func answersWhileTheSharedPoolIsBlocked() throws {
        let running = try Running()
        let release = DispatchSemaphore(value: 0)
        let started = Counter()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let blockers = cores + 1
        for _ in 0..<blockers {
            Task.detached { started.add(); release.wait() }
        }
        defer { for _ in 0..<blockers { release.signal() } }
        // The pool is full once a probe task cannot start.
        let probe = Counter()
        let deadline = Date(timeIntervalSinceNow: 5)
        while started.value < cores - 1 && Date() < deadline { usleep(10_000) }
        Task.detached { probe.add() }
        usleep(300_000)
        try #require(probe.value == 0, "precondition: the shared pool is blocked (\(started.value) blockers running)")

        let reply = try AgentClient(endpoint: .unix(running.socket), timeout: 5)
            .request("POST", "/v1/decide", json: Array(#"{"user": "alice", "ip": "203.0.113.50"}"#.utf8))
        #expect(reply.status == 200)
        #expect(probe.value == 0, "the pool stayed blocked while the API answered")
    }

    @Test func aTCPListenerIsNeverServedWithoutAToken() throws {
        let running = try Running()
        var config = running.agent.config
        config.apiSocket = nil
        config.apiListen = .init(host: "127.0.0.1", port: 0)
        config.apiTokenFile = nil
        #expect(throws: AgentAPIError.self) { try AgentAPI(agent: running.agent, config: config, metrics: running.metrics).start() }
        #expect(throws: ConfigError.self) { try AgentConfig.parse("[api]\nlisten = 127.0.0.1:8081", path: "t.conf") }
        #expect(!AgentConfig.isLoopback("127.evil.example") && AgentConfig.isLoopback("127.0.0.2") && AgentConfig.isLoopback("::1"))
    }

    /// A flood of half-sent connections on TCP: beyond the limit they are closed on
    /// arrival, the rest when their head does not come in time, and the socket
    /// answers throughout.
    @Test func idleConnectionsAreCappedAndTimedOutWhileTheSocketAnswers() throws {
        let running = try Running(token: "s3cret", connectionLimit: 20, headTimeout: 1.5)
        let body = #"{"user": "alice", "ip": "192.0.2.1"}"#
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<60 {
            let fd = try Self.connect(port: running.tcpPort)
            let partial = "POST /v1/decide HTTP/1.1\r\nHost: x\r\n"
            _ = partial.withCString { send(fd, $0, strlen($0), 0) }
            flood.append(fd)
        }
        // The socket has its own slots: PAM's check is answered at once.
        #expect(try running.request("POST", "/v1/decide", body).0 == 200)
        let early = flood.filter { Self.closedByPeer($0, waiting: 1.0) }.count
        #expect(early >= 40, "connections past the limit are closed on arrival (\(early) of 60)")
        #expect(running.api.tcpGuard.refusedConnections >= 40)
        // The half-sent ones are dropped when their head does not arrive.
        let late = flood.filter { Self.closedByPeer($0, waiting: 10) }.count
        #expect(late == 60)
        #expect(try running.request("POST", "/v1/decide", body, tcp: true, token: "s3cret").0 == 200)
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
        return fd
    }

    /// Whether the server closed the connection within `waiting` seconds (a read returns 0).
    static func closedByPeer(_ fd: Int32, waiting: Double) -> Bool {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(waiting * 1000)) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK)) <= 0
    }
}

/// A thread-safe count.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}
