import Agent
import AgentAPI
import AlertSinks
import ArgumentParser
import CoreMetrics
import Fleet
import FleetSync
import Logging
import Fleet
import FleetSync
import Observability
import Server
import ServiceLifecycle

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the agent: read logins, score them, raise decisions.",
        discussion: """
        Reads the configured sources (the systemd journal, log files), turns their
        lines into login events with the rules, decides about each successful
        login (allow, challenge, alert, or learn while an account is new) and
        writes alerts as ECS JSON lines. Logins and source positions are kept in
        SQLite in the state directory, so a restart continues where it stopped.
        The model is retrained in the background; without a model file, a first
        one is trained once enough logins are stored.

        Without --config, built-in defaults apply: the local journal, the shipped
        rules, state in $STATE_DIRECTORY, /var/lib/ipsight or ~/.local/state/ipsight.

        The HTTP API (decide, feedback, status, metrics, and the SageMaker routes on
        the agent's model) listens on a Unix socket, by default
        $RUNTIME_DIRECTORY/ipsight.sock or /run/ipsight/ipsight.sock, and on TCP when
        [api] listen is set; `ipsight check` and `ipsight status` talk to it.

        Signals: SIGHUP reloads the config (a config that does not validate is
        refused and the running one stays), SIGTERM stops after saving state.

        Examples:
          ipsight run --config /etc/ipsight/ipsight.conf
          ipsight run
        """
    )

    @Option(help: "The config file (see deploy/ipsight.conf).")
    var config: String?

    @Flag(help: "Log debug messages too.")
    var verbose = false

    func run() throws {
        let settings: AgentConfig
        do {
            settings = try config.map { path throws(ConfigError) in try AgentConfig.load(path: path) }
                ?? AgentConfig.parse(AgentConfig.embeddedDefault, path: "(built-in)")
        } catch {
            throw IngestCommandFailure("\(error)")
        }
        ProcessSignals.prepare()
        // Once for the process, before the first logger or metric is made: the journal
        // when systemd connected standard error to it, else standard error.
        LogOutput.detect().bootstrap(level: verbose ? .debug : .info)
        let logger = Logger(label: LogLine.rootLabel)
        // One registry for everything the agent counts, which /metrics renders.
        let help = [AgentStats.help, AlertRouter.metricHelp, ServerMetrics.help].reduce(into: [String: String]()) { $0.merge($1) { a, _ in a } }
        let metrics = PrometheusMetrics(help: help, timerBuckets: AgentStats.timerBuckets.merging(ServerMetrics.timerBuckets) { a, _ in a })
        MetricsSystem.bootstrap(metrics.factory)
        do {
            // In a fleet, one store (its pool runs as a service) for the model exchange and
            // the delivery claims, made first: the alert router asks it from its start.
            let fleetStore = try settings.fleet.map {
                try FleetStore(config: try FleetConfig(settings: $0, file: config ?? "(built-in)"), logger: logger)
            }
            let agent = try AgentRuntime(config: settings, configPath: config, logger: logger,
                                         alertLogger: Logger(label: "ipsight.alerts"), metrics: metrics.factory,
                                         deliveryClaims: fleetStore.map { FleetDeliveryClaims(store: $0, logger: logger) })
            // The API changes only on restart (a reload keeps its listeners). Bound
            // before the rest starts: a port in use stops the start at once.
            let api = AgentAPI(agent: agent, config: settings, metrics: metrics)
            // Sharing with the fleet: services beside the pipeline, never on its path.
            let fleet = try fleetServices(fleetStore, settings, agent: agent, logger: logger)
            try api.start()
            try runBlocking {
                try await agent.run(before: fleet.pool + [.init(service: api)],
                                    after: [.init(service: ReloadOnHangup(agent: agent))] + fleet.sharing,
                                    signals: [.sigterm, .sigint])
            }
        } catch {
            logger.error("\(error)")
            throw ExitCode.failure
        }
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check agent config files.",
        subcommands: [ConfigCheckCommand.self]
    )
}

struct ConfigCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file; errors name the line and the key.",
        discussion: """
        Exit status 0 and a summary when the file is valid, 1 and the first error
        (FILE:LINE: KEY: problem) when it is not.

        Example:
          ipsight config check /etc/ipsight/ipsight.conf
        """
    )

    @Argument(help: "The config file.")
    var file: String

    func run() throws {
        var config: AgentConfig
        do {
            config = try AgentConfig.load(path: file)
            // Read the table as the agent would, so a bad row is found now, not at start.
            try config.loadNetworks()
        } catch {
            throw IngestCommandFailure("\(error)")
        }
        var sources: [String] = []
        if config.journal { sources.append("journal") }
        sources += config.files
        print("\(file): ok")
        print("  sources: \(sources.joined(separator: ", ")) (\(config.follow ? "followed" : "read once"))")
        print("  state: \(config.stateDirectory), model: \(config.resolvedModelPath)")
        print("  entity: \(config.entity.rawValue), cold start: \(config.coldStartPolicy.rawValue) below \(config.coldStartMinLogins) logins")
        print("  thresholds: \(describe(config.thresholds))"
            + config.serviceThresholds.keys.sorted().map { "; \($0): \(describe(config.serviceThresholds[$0]!))" }.joined())
        print("  allowlist: \(config.allowedNetworks.count) networks, \(config.allowedEntities.count) entities; alerts: \(config.alertOutputs.joined(separator: ", "))")
        print("  routed networks: " + (config.networks.map { "\($0.networks.count) from \($0.path)" } ?? "none (distances in shared prefix bits)"))
        if let fleet = config.fleet {
            let endpoint: String
            switch fleet.endpoint {
            case .tcp(let host, let port): endpoint = "\(host):\(port), tls \(fleet.tls.rawValue)" + (fleet.tlsCA.map { " (CA \($0))" } ?? "")
            case .unixSocket(let path): endpoint = path
            }
            print("  fleet: \(fleet.user)@\(endpoint)/\(fleet.database) as \(fleet.hostName)\(fleet.trainer ? ", may train" : "")")
        }
    }

    private func describe(_ t: AgentConfig.Thresholds) -> String {
        func one(_ name: String, _ v: AgentConfig.Threshold) -> String {
            switch v {
            case .risk(let r): return "\(name) at risk \(r)"
            case .falsePositiveRate(let f): return "\(name) at \(f * 100)% false positives"
            }
        }
        return one("challenge", t.challenge) + ", " + one("alert", t.alert)
    }
}

/// With a `[fleet]` section: the store's pool (for the model exchange and the
/// delivery claims), the exchange of the fleet's one model (adopting the newest;
/// training and publishing while this agent holds the trainer lock), and the sharing
/// of logins, failures and verdicts, which keeps a pool of its own across outages.
/// A group stops in reverse order: the pool goes first in the group, so it stops
/// last, after the alert drain that still claims deliveries.
private func fleetServices(_ store: FleetStore?, _ settings: AgentConfig, agent: AgentRuntime, logger: Logger) throws
        -> (pool: [ServiceGroupConfiguration.ServiceConfiguration], sharing: [ServiceGroupConfiguration.ServiceConfiguration]) {
    guard let store, let fleet = settings.fleet else { return ([], []) }
    return ([.init(service: FleetClientService(store: store))],
            [.init(service: try ModelExchange(store: store, agent: agent, settings: fleet, logger: logger)),
             .init(service: FleetSyncService(agent: agent, config: store.config, logger: logger))])
}
