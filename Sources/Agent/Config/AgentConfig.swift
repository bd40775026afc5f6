import Detection
import IPSightCore
import AlertSinks
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import IPInsights

/// The agent's validated configuration. Built from a config file (or the
/// embedded default) by `AgentConfig.parse`, which rejects anything it does not
/// understand, naming the line and the key.
public struct AgentConfig: Sendable, Equatable {
    public typealias EntityKey = DecisionPolicy.EntityKey
    public typealias Threshold = DecisionPolicy.Threshold
    public typealias Thresholds = DecisionPolicy.Thresholds
    public typealias ColdStartPolicy = DecisionPolicy.ColdStartPolicy

    /// How logins are decided: what the detector is given of this config.
    public var policy = DecisionPolicy()

    // [agent]
    public var stateDirectory = AgentConfig.defaultStateDirectory()
    /// nil: `model.ipsm` in the state directory, trained at first start.
    public var modelPath: String?
    /// nil: the shipped rules (`RuleSet.defaultDirectory()`).
    public var rulesDirectory: String?
    public var entity: EntityKey { get { policy.entity } set { policy.entity = newValue } }
    public var scoreFailures: Bool { get { policy.scoreFailures } set { policy.scoreFailures = newValue } }

    // [sources]
    public var journal = true
    public var files: [String] = []
    /// Files a service writes in its own format (`PATH:IDENT`): read with that identifier, not as syslog.
    public var fileIdentifiers: [String: String] = [:]
    public var follow = true
    /// Where a source without a saved position starts: its beginning, or new records only.
    public var startAtEnd = false
    /// Read traditional syslog timestamps as UTC rather than local time.
    public var utc = false

    // [thresholds] and [thresholds.SERVICE]
    public var thresholds: Thresholds { get { policy.thresholds } set { policy.thresholds = newValue } }
    public var serviceThresholds: [String: Thresholds] { get { policy.serviceThresholds } set { policy.serviceThresholds = newValue } }

    // [cold_start]
    public var coldStartPolicy: ColdStartPolicy { get { policy.coldStartPolicy } set { policy.coldStartPolicy = newValue } }
    public var coldStartMinLogins: Int { get { policy.coldStartMinLogins } set { policy.coldStartMinLogins = newValue } }
    /// The decision for a cold entity's login from an unfamiliar network: challenge or alert.
    public var coldStartUnfamiliar: Decision { get { policy.coldStartUnfamiliar } set { policy.coldStartUnfamiliar = newValue } }
    /// Accounts (besides the entity) that must have used the address's /24 (/48) for
    /// it to count as the organisation's network.
    public var coldStartOrgAccounts: Int { get { policy.coldStartOrgAccounts } set { policy.coldStartOrgAccounts = newValue } }

    // [allowlist]
    public var allowedNetworks: [Network] { get { policy.allowedNetworks } set { policy.allowedNetworks = newValue } }
    public var allowedEntities: Set<String> { get { policy.allowedEntities } set { policy.allowedEntities = newValue } }

    // [alerts]
    /// "stdout" and/or file paths; alerts are ECS-shaped JSON lines, written to each.
    public var alertOutputs = ["stdout"]
    /// Remote alert sinks, `[sink.NAME]` sections: `type` and the type's settings
    /// (see docs/alerts.md), delivered through the durable spool.
    public var sinks: [String: [String: String]] = [:]
    var sinkLines: [String: Int] = [:]
    public var alertChallenges = true

    // [api]
    /// The Unix socket `ipsight check` and `ipsight status` talk to; nil: none.
    public var apiSocket: String? = AgentConfig.defaultSocketPath()
    /// Permission bits of the socket file (root, as PAM runs, always may connect).
    public var apiSocketMode: UInt16 = 0o600
    /// `host:port` for the HTTP API over TCP; nil: not served over TCP.
    public var apiListen: Endpoint?
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }
    /// Required as `Authorization: Bearer` over TCP when set (and always off loopback).
    public var apiTokenFile: String?
    /// Also serve the SageMaker hosting contract (`/ping`, `/invocations`) on the agent's model.
    public var apiInvocations = true

    // [credential_stuffing]
    /// Failed logins from one address against this many distinct users within
    /// `stuffingWindow` make its next success an alert; 0 turns the check off.
    public var stuffingMinUsers: Int { get { policy.stuffingMinUsers } set { policy.stuffingMinUsers = newValue } }
    public var stuffingWindow: Double { get { policy.stuffingWindow } set { policy.stuffingWindow = newValue } }

    // [risk]
    /// `networks`: a routed-network table (`first last asn` rows) the risk counts
    /// distances in; nil (the default): distances in shared prefix bits.
    public var networksPath: String?
    /// The table itself, read by `loadNetworks`, not by `parse`: commands that only
    /// need the socket or the state directory do not read a large file.
    public var networks: RoutedNetworksTable? { get { policy.networks } set { policy.networks = newValue } }
    /// Where `networks` was set, for errors found when the table is read.
    var networksLine: Int?
    var file = "(built-in)"

    // [retrain]
    public var retrainInterval = 86_400.0
    public var retention = 90 * 86_400.0
    /// Logins needed before a first model is trained from the store.
    public var bootstrapMinLogins: Int { get { policy.organisationMinLogins } set { policy.organisationMinLogins = newValue } }
    /// Most recent share of the window held out to validate a retrained model.
    public var validationShare: Double { get { policy.validationShare } set { policy.validationShare = newValue } }

    // [fleet]
    /// The shared PostgreSQL of a fleet of agents; nil (no `[fleet]` section): this
    /// host alone, its state in its own SQLite.
    public var fleet: FleetSettings?

    public init() {}

    /// systemd's `$STATE_DIRECTORY`, else `/var/lib/ipsight` when it can be
    /// written, else `$XDG_STATE_HOME/ipsight` or `~/.local/state/ipsight`: so that
    /// `ipsight run` works for an ordinary user too.
    public static func defaultStateDirectory() -> String {
        func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let dir = env("STATE_DIRECTORY") { return String(dir.split(separator: ":").first ?? "") }
        if access("/var/lib/ipsight", W_OK) == 0 || (access("/var/lib/ipsight", F_OK) != 0 && access("/var/lib", W_OK) == 0) {
            return "/var/lib/ipsight"
        }
        if let state = env("XDG_STATE_HOME") { return state + "/ipsight" }
        return (env("HOME") ?? "/tmp") + "/.local/state/ipsight"
    }

    /// systemd's `$RUNTIME_DIRECTORY`, else `/run/ipsight` for root, else the
    /// user's runtime directory: the same place `ipsight check` looks by default.
    public static func defaultSocketPath() -> String {
        func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } }
        if let dir = env("RUNTIME_DIRECTORY") { return String(dir.split(separator: ":").first ?? "") + "/ipsight.sock" }
        if getuid() == 0 { return "/run/ipsight/ipsight.sock" }
        if let dir = env("XDG_RUNTIME_DIR") { return dir + "/ipsight/ipsight.sock" }
        return defaultStateDirectory() + "/ipsight.sock"
    }

    public var resolvedModelPath: String { modelPath ?? stateDirectory + "/model.ipsm" }
    public var databasePath: String { stateDirectory + "/ipsight.db" }

    public func thresholds(for service: String) -> Thresholds { policy.thresholds(for: service) }

    /// What `ipsight run` uses without a config file: the journal, the shipped
    /// rules, state in a directory the user can write.
    public static let embeddedDefault = """
        # ipsight agent: built-in defaults (see deploy/ipsight.conf for every key)
        [sources]
        journal = true
        follow = true

        [thresholds]
        challenge = 0.9
        alert = 0.99

        [cold_start]
        policy = unfamiliar
        min_logins = 5
        """

    /// Parses and validates a config file's text.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> AgentConfig {
        let file = try ConfigFile(text: text, path: path)
        var config = AgentConfig()
        config.file = path
        var reader = ConfigReader(path: path)
        // Service thresholds start from [thresholds] wherever it is in the file.
        let isService = { (e: ConfigFile.Entry) in e.section.hasPrefix("thresholds.") }
        // [fleet] is validated as a whole by FleetSettings (its keys depend on each other).
        let isFleet = { (e: ConfigFile.Entry) in e.section == "fleet" }
        for entry in file.entries where !isService(entry) && !isFleet(entry) { try config.apply(entry, &reader) }
        for entry in file.entries where isService(entry) { try config.apply(entry, &reader) }
        let fleet = file.entries.filter(isFleet).map { FleetSettings.Entry(key: $0.key, value: $0.value, line: $0.line) }
        if !fleet.isEmpty {
            do { config.fleet = try FleetSettings.parse(fleet) } catch {
                throw ConfigError(file: path, line: error.line, key: error.key, message: error.message)
            }
        }
        try config.validate(reader)
        return config
    }

    /// Reads and parses a config file.
    public static func load(path: String) throws(ConfigError) -> AgentConfig {
        guard let text = readTextFile(path) else {
            throw ConfigError(file: path, line: nil, key: nil, message: "cannot read the file")
        }
        return try parse(text, path: path)
    }

    private mutating func apply(_ e: ConfigFile.Entry, _ r: inout ConfigReader) throws(ConfigError) {
        switch (e.section, e.key) {
        case ("agent", "state_dir"): stateDirectory = try r.path(e)
        case ("agent", "model"): modelPath = try r.path(e)
        case ("agent", "rules"): rulesDirectory = try r.path(e)
        case ("agent", "entity"):
            guard let key = EntityKey(rawValue: e.value) else { throw r.error(e, "expected user or user@service") }
            entity = key
        case ("agent", "score_failures"): scoreFailures = try r.bool(e)
        case ("sources", "journal"): journal = try r.bool(e)
        case ("sources", "files"):
            files = []
            fileIdentifiers = [:]
            for item in try r.list(e) {
                // `/var/log/keycloak/keycloak.log:keycloak`: the service that writes the file.
                var path = item
                if let colon = item.lastIndex(of: ":") {
                    let name = String(item[item.index(after: colon)...])
                    guard !name.isEmpty, !name.contains("/"), name.allSatisfy({ !$0.isWhitespace }) else {
                        throw r.error(e, "'\(item)': after the path, ':NAME' names the service that writes the file (keycloak, vaultwarden)")
                    }
                    path = String(item[..<colon])
                    fileIdentifiers[path] = name
                }
                guard path.hasPrefix("/") else { throw r.error(e, "'\(path)' is not an absolute path") }
                files.append(path)
            }
        case ("sources", "follow"): follow = try r.bool(e)
        case ("sources", "start"):
            switch e.value {
            case "beginning": startAtEnd = false
            case "end": startAtEnd = true
            default: throw r.error(e, "expected beginning or end")
            }
        case ("sources", "utc"): utc = try r.bool(e)
        case ("cold_start", "policy"):
            guard let policy = ColdStartPolicy(rawValue: e.value) else { throw r.error(e, "expected unfamiliar, learn, challenge or alert") }
            coldStartPolicy = policy
        case ("cold_start", "unfamiliar"):
            switch e.value {
            case "challenge": coldStartUnfamiliar = .challenge
            case "alert": coldStartUnfamiliar = .alert
            default: throw r.error(e, "expected challenge or alert")
            }
        case ("cold_start", "org_accounts"): coldStartOrgAccounts = try r.integer(e, 1...100_000)
        case ("cold_start", "min_logins"): coldStartMinLogins = try r.integer(e, 0...1_000_000)
        case ("allowlist", "networks"):
            allowedNetworks = try r.list(e).map { (text: String) throws(ConfigError) -> Network in
                guard let network = Network(text) else { throw r.error(e, "'\(text)' is not a network (CIDR, e.g. 192.0.2.0/24)") }
                return network
            }
        case ("allowlist", "entities"): allowedEntities = Set(try r.list(e))
        case ("alerts", "output"):
            alertOutputs = try r.list(e).map { (output: String) throws(ConfigError) -> String in
                guard output == "stdout" || output.hasPrefix("/") else {
                    throw r.error(e, "'\(output)' is neither stdout nor an absolute file path")
                }
                return output
            }
            if alertOutputs.isEmpty { throw r.error(e, "expected stdout and/or absolute file paths") }
        case ("alerts", "challenges"): alertChallenges = try r.bool(e)
        case ("api", "socket"):
            apiSocket = e.value.isEmpty || e.value == "off" ? nil : try r.path(e)
        case ("api", "socket_mode"):
            guard let mode = UInt16(e.value, radix: 8), mode <= 0o777, mode & 0o600 == 0o600 else {
                throw r.error(e, "expected octal permissions that let the agent read and write, such as 0600 or 0660")
            }
            apiSocketMode = mode
        case ("api", "listen"):
            if e.value.isEmpty || e.value == "off" { apiListen = nil; break }
            guard let colon = e.value.lastIndex(of: ":"), let port = Int(e.value[e.value.index(after: colon)...]),
                  (0...65535).contains(port), colon != e.value.startIndex else {
                throw r.error(e, "expected host:port, such as 127.0.0.1:8081 or [::1]:8081")
            }
            var host = String(e.value[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            apiListen = Endpoint(host: host, port: port)
        case ("api", "token_file"): apiTokenFile = e.value.isEmpty ? nil : try r.path(e)
        case ("api", "invocations"): apiInvocations = try r.bool(e)
        case ("credential_stuffing", "min_users"): stuffingMinUsers = try r.integer(e, 0...1_000_000)
        case ("credential_stuffing", "window"): stuffingWindow = try r.duration(e, 1...30 * 86_400)
        case ("risk", "networks"):
            networksPath = e.value.isEmpty || e.value == "off" ? nil : try r.path(e)
            networksLine = e.line
        case ("retrain", "interval"): retrainInterval = try r.duration(e, 1...3650 * 86_400)
        case ("retrain", "retention"): retention = try r.duration(e, 60...3650 * 86_400)
        case ("retrain", "bootstrap_min_logins"): bootstrapMinLogins = try r.integer(e, 10...100_000_000)
        case ("retrain", "validation_share"): validationShare = try r.number(e, 0.01...0.5)
        case ("thresholds", _):
            try r.threshold(e, into: &thresholds)
        case (let section, _) where section.hasPrefix("sink.") && section.count > "sink.".count:
            let name = String(section.dropFirst("sink.".count))
            sinks[name, default: [:]][e.key] = e.value
            if sinkLines[name] == nil { sinkLines[name] = e.line }
        case (let section, _) where section.hasPrefix("thresholds."):
            let service = String(section.dropFirst("thresholds.".count))
            var t = serviceThresholds[service] ?? thresholds
            try r.threshold(e, into: &t)
            serviceThresholds[service] = t
        default:
            throw r.error(e, e.section.isEmpty ? "keys belong in a [section]" : "unknown key")
        }
        r.lines[e.name] = e.line
    }

    private func validate(_ reader: ConfigReader) throws(ConfigError) {
        let path = reader.path
        let services = serviceThresholds.sorted(by: { $0.key < $1.key }).map { ("thresholds.\($0.key)", $0.value) }
        for (name, t) in [("thresholds", thresholds)] + services {
            if case .risk(let c) = t.challenge, case .risk(let a) = t.alert, c > a {
                throw ConfigError(file: path, line: reader.lines["\(name).challenge"], key: "\(name).challenge",
                                  message: "the challenge threshold \(c) is above the alert threshold \(a)")
            }
        }
        if !journal && files.isEmpty {
            throw ConfigError(file: path, line: nil, key: "sources", message: "no source: set journal = true or files = ...")
        }
        // Build each sink once now, so a bad sink (missing URL, unreadable secret)
        // is refused at start and by `config check`, naming its section.
        for name in sinks.keys.sorted() {
            do {
                _ = try SinkConfiguration.makeSink(name: name, settings: sinks[name]!)
            } catch {
                throw ConfigError(file: path, line: sinkLines[name], key: "sink.\(name)", message: error.reason)
            }
        }
        // Loopback is shared by every local user: only the Unix socket, guarded by its
        // file mode, may go without a token.
        if apiListen != nil, apiTokenFile == nil {
            throw ConfigError(file: path, line: reader.lines["api.listen"], key: "api.listen",
                              message: "a TCP listener needs api.token_file (any local user can reach loopback); the socket needs none")
        }
        if retention < retrainInterval {
            throw ConfigError(file: path, line: reader.lines["retrain.retention"], key: "retrain.retention",
                              message: "shorter than retrain.interval")
        }
    }
}

extension AgentConfig {
    /// Reads the routed-network table `[risk] networks` names into `networks`, or
    /// takes `previous` when it is that file unchanged (a reload). A table that
    /// cannot be read or has a malformed row is an error naming the key's line,
    /// then the table's line.
    public mutating func loadNetworks(reusing previous: RoutedNetworksTable? = nil) throws(ConfigError) {
        guard let path = networksPath else {
            networks = nil
            return
        }
        if let previous, previous.isCurrent(path: path) {
            networks = previous
            return
        }
        do {
            networks = try RoutedNetworksTable.read(path: path)
        } catch {
            throw ConfigError(file: file, line: networksLine, key: "risk.networks", message: error.description)
        }
    }

    /// Whether `host` only accepts connections from this machine: `localhost`, or a
    /// literal address in 127.0.0.0/8 or ::1 (`127.evil.example` is a name, not loopback).
    public static func isLoopback(_ host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return address == IPAddress("::1") || address.ipv4.map { $0 >> 24 == 127 } == true
    }
}

/// Typed reads of config values, each failure naming line and key.
struct ConfigReader {
    let path: String
    var lines: [String: Int] = [:]

    init(path: String) { self.path = path }

    func error(_ e: ConfigFile.Entry, _ message: String) -> ConfigError {
        ConfigError(file: path, line: e.line, key: e.name, message: message)
    }

    func bool(_ e: ConfigFile.Entry) throws(ConfigError) -> Bool {
        switch e.value {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(e, "expected true or false, not '\(e.value)'")
        }
    }

    func integer(_ e: ConfigFile.Entry, _ range: ClosedRange<Int>) throws(ConfigError) -> Int {
        guard let v = Int(e.value), range.contains(v) else {
            throw error(e, "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    func number(_ e: ConfigFile.Entry, _ range: ClosedRange<Double>) throws(ConfigError) -> Double {
        guard let v = Double(e.value), range.contains(v) else {
            throw error(e, "expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    func path(_ e: ConfigFile.Entry) throws(ConfigError) -> String {
        guard e.value.hasPrefix("/") || e.value.hasPrefix(".") else { throw error(e, "expected a path") }
        return e.value
    }

    /// Comma-separated, blanks around items ignored, empty items refused.
    func list(_ e: ConfigFile.Entry) throws(ConfigError) -> [String] {
        if e.value.isEmpty { return [] }
        let items = e.value.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingBlanks() }
        if items.contains(where: \.isEmpty) { throw error(e, "empty item in a comma-separated list") }
        return items
    }

    /// `90` (seconds), `30s`, `15m`, `24h`, `90d`, within `range` (seconds): every
    /// duration has bounds, so no later arithmetic or formatting meets an absurd one.
    func duration(_ e: ConfigFile.Entry, _ range: ClosedRange<Double>) throws(ConfigError) -> Double {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var text = e.value
        var unit = 1.0
        if let last = text.last, let u = units[last] {
            unit = u
            text.removeLast()
        }
        guard let v = Double(text), v > 0, v.isFinite else { throw error(e, "expected a duration such as 30m, 24h or 90d") }
        guard range.contains(v * unit) else {
            throw error(e, "expected a duration from \(Format.duration(range.lowerBound)) to \(Format.duration(range.upperBound))")
        }
        return v * unit
    }

    /// `challenge`/`alert` as a risk in [0, 1], or `challenge_fpr`/`alert_fpr` as a
    /// false-positive rate in (0, 0.5].
    func threshold(_ e: ConfigFile.Entry, into t: inout AgentConfig.Thresholds) throws(ConfigError) {
        switch e.key {
        case "challenge": t.challenge = .risk(try number(e, 0...1))
        case "alert": t.alert = .risk(try number(e, 0...1))
        case "challenge_fpr": t.challenge = .falsePositiveRate(try number(e, 1e-9...0.5))
        case "alert_fpr": t.alert = .falsePositiveRate(try number(e, 1e-9...0.5))
        default: throw error(e, "unknown key (expected challenge, alert, challenge_fpr or alert_fpr)")
        }
    }
}
