import AgentClient
import Agent
import Foundation
import IPSightCore
import Hummingbird
import Logging
import NIOCore
import Observability
import Server
import ServiceLifecycle

/// The running agent's HTTP API: on a Unix socket (for `ipsight check` from PAM
/// and `ipsight status`) and optionally on TCP. Both listeners serve the same
/// routes; a bearer token, when configured, guards TCP only, since the socket's
/// file permissions already say who may connect.
public final class AgentAPI: Service, @unchecked Sendable {
    private let agent: AgentRuntime
    private let config: AgentConfig
    /// The process's registry, which `/metrics` renders.
    private let exposition: PrometheusMetrics
    /// The API's own figures (requests by route), in that registry.
    private let metrics: ServerMetrics
    /// One guard per listener: a flood on TCP leaves the socket's slots to PAM.
    public let socketGuard: ConnectionGuard
    public let tcpGuard: ConnectionGuard
    private var group: ServiceGroup?
    private var task: Task<Void, Never>?
    private let finished = DispatchSemaphore(value: 0)
    private let started = Started()

    /// One executor for every API in the process: its threads are never stopped.
    /// One per core, up to 8: a decision takes microseconds, so more would only wait.
    static let threads = DedicatedThreads(count: min(8, max(2, ProcessInfo.processInfo.activeProcessorCount)),
                                          name: "ipsight-api")

    /// - Parameters:
    ///   - metrics: the process's registry, the one the agent records into.
    ///   - connectionLimit: connections each listener holds at once.
    ///   - headTimeout: how long a connection may wait before its request head arrives.
    public init(agent: AgentRuntime, config: AgentConfig, metrics: PrometheusMetrics,
                connectionLimit: Int = 256, headTimeout: Double = 10) {
        self.agent = agent
        self.config = config
        exposition = metrics
        self.metrics = ServerMetrics(factory: metrics.factory)
        socketGuard = ConnectionGuard(limit: connectionLimit, headTimeout: .milliseconds(Int64(headTimeout * 1000)))
        tcpGuard = ConnectionGuard(limit: connectionLimit, headTimeout: .milliseconds(Int64(headTimeout * 1000)))
    }

    /// Whether the config asks for any listener.
    public static func enabled(_ config: AgentConfig) -> Bool { config.apiSocket != nil || config.apiListen != nil }

    /// Binds every listener; throws (and leaves nothing running) when one cannot be bound.
    public func start() throws {
        var token: String?
        if let path = config.apiTokenFile {
            do { token = try ServerConfiguration.readToken(path: path) } catch { throw AgentAPIError(message: error.description) }
        }
        var services: [any Service] = []
        let started = self.started
        // Hummingbird's own messages: only what needs an operator.
        var logger = Logger(label: "ipsight.api")
        logger.logLevel = .warning
        if let path = config.apiSocket {
            try UnixSocketFile.prepare(path)
            let mode = config.apiSocketMode
            let router = makeRouter(token: nil)
            services.append(Application(
                router: router, server: socketGuard.server(),
                configuration: .init(address: .unixDomainSocket(path: path), serverName: "ipsight"),
                onServerRunning: { _ in
                    chmod(path, mode_t(mode))
                    started.signal("unix:\(path)")
                }, logger: logger))
        }
        if let listen = config.apiListen {
            // Loopback is every local user's: TCP is never served without a token.
            guard let token else { throw AgentAPIError(message: "the TCP listener needs api.token_file") }
            let router = makeRouter(token: token)
            services.append(Application(
                router: router, server: tcpGuard.server(),
                configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: "ipsight"),
                onServerRunning: { channel in started.signal("http://\(listen.host):\(channel.localAddress?.port ?? listen.port)") },
                logger: logger))
        }
        guard !services.isEmpty else { return }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        self.group = group
        let failure = FailureBox()
        let finished = self.finished
        task = Task(executorPreference: AgentAPI.threads) {
            do { try await group.run() } catch { failure.set(error) }
            started.fail()
            finished.signal()
        }
        // A failure to bind is reported at once by the error above, not by this deadline.
        let deadline = Date(timeIntervalSinceNow: 60)
        while started.count < services.count {
            if let error = failure.error { throw AgentAPIError(message: "the API could not start: \(error)") }
            if started.failed { throw AgentAPIError(message: "the API stopped while starting") }
            if Date() > deadline { stop(); throw AgentAPIError(message: "the API did not start listening within 60 s") }
            usleep(10_000)
        }
        agent.logger.notice("API listening on \(started.addresses.joined(separator: ", "))")
    }

    /// As one of the agent's services: serves (from `start()`) until graceful
    /// shutdown, then stops within a second, after the pipeline and delivery.
    public func run() async {
        await waitForShutdown()
        stop(seconds: 1)
    }

    /// Where the listeners are, as `unix:PATH` and `http://HOST:PORT` (the real port when 0 was asked for).
    public var addresses: [String] { started.addresses }

    /// Stops the listeners (requests in flight finish) and waits up to `seconds`.
    public func stop(seconds: Double = 2) {
        guard let group else { return }
        Task(executorPreference: AgentAPI.threads) { await group.triggerGracefulShutdown() }
        _ = finished.wait(timeout: .now() + seconds)
        if let path = config.apiSocket { unlink(path) }
        self.group = nil
    }

    private func makeRouter(token: String?) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics,
                                                        routes: DecisionRoutes.paths.union(ServingRoutes<BasicRequestContext>.paths)))
        if let token { router.add(middleware: BearerAuthMiddleware(token: token)) }
        let routes = DecisionRoutes(agent: agent, config: config, metrics: metrics, exposition: exposition)
        routes.add(to: router)
        if config.apiInvocations {
            let served = DetectorModel(detector: agent.detector, path: config.resolvedModelPath)
            // The agent's own `/metrics` (above) reports the serving model too.
            ServingRoutes<BasicRequestContext>(store: served, metrics: metrics, configuration: ServerConfiguration())
                .add(to: router, exposition: nil)
        }
        return router
    }
}

public struct AgentAPIError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Counts listeners that are up, for `start` to wait on.
private final class Started: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    private var stopped = false
    func signal(_ address: String) { lock.withLock { list.append(address) } }
    func fail() { lock.withLock { stopped = true } }
    var count: Int { lock.withLock { list.count } }
    var failed: Bool { lock.withLock { stopped } }
    var addresses: [String] { lock.withLock { list } }
}

private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: (any Error)?
    func set(_ error: any Error) { lock.withLock { stored = error } }
    var error: (any Error)? { lock.withLock { stored } }
}

/// The socket file's directory and a stale file from an agent that died.
enum UnixSocketFile {
    static func prepare(_ path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o755])
        }
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw AgentAPIError(message: "\(path) exists and is not a socket")
        }
        if UnixSocketClient.accepts(path) {
            throw AgentAPIError(message: "another agent is listening on \(path)")
        }
        unlink(path)
    }
}
