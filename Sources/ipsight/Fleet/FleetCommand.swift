import Agent
import ArgumentParser
import Dispatch
import Fleet
import IPSightCore
import Logging

/// `ipsight fleet migrate|status`: the shared PostgreSQL of a fleet of agents,
/// reached through the `[fleet]` section of an agent config file.
struct FleetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Set up and inspect the PostgreSQL a fleet of agents shares.",
        subcommands: [FleetMigrateCommand.self, FleetStatusCommand.self]
    )
}

struct FleetOptions: ParsableArguments {
    @Option(help: "An agent config file with a [fleet] section.")
    var config: String

    /// The file's fleet settings, the password read.
    func fleetConfig() throws -> FleetConfig {
        let agent: AgentConfig
        do { agent = try AgentConfig.load(path: config) } catch { throw IngestCommandFailure("\(error)") }
        guard let settings = agent.fleet else {
            throw IngestCommandFailure("\(config): no [fleet] section (this host keeps its state alone)")
        }
        do { return try FleetConfig(settings: settings, file: config) } catch { throw IngestCommandFailure("\(error)") }
    }

    /// Runs `body` on a store for the file's database; the command line is synchronous.
    func withStore<T: Sendable>(_ body: @escaping @Sendable (FleetStore) async throws -> T) throws -> T {
        let fleet = try fleetConfig()
        var logger = Logger(label: "ipsight.fleet")
        logger.logLevel = .warning
        let box = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await FleetStore.withStore(fleet, logger: logger, body)) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        switch box.result! {
        case .success(let value): return value
        case .failure(let error): throw IngestCommandFailure("\(error)")
        }
    }
}

/// Carries a task's result out to the synchronous command.
private final class Outcome<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

struct FleetMigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Bring the fleet database's schema to this version of ipsight.",
        discussion: """
        Applies the migrations the database lacks, each in its own transaction; running
        it again does nothing. Run it with the owner role (deploy/fleet/roles.sql) in
        the file's [fleet] section. A database newer than this ipsight is refused.

        Example:
          ipsight fleet migrate --config /etc/ipsight/fleet-owner.conf
        """
    )

    @OptionGroup var options: FleetOptions

    func run() throws {
        let (applied, version) = try options.withStore { store in
            (try await store.migrate(), try await store.schemaVersion())
        }
        if applied.isEmpty {
            print("fleet schema: already at version \(version)")
        } else {
            print("fleet schema: applied \(applied.map(String.init).joined(separator: ", ")); now at version \(version)")
        }
    }
}

struct FleetStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the fleet's agents, model versions and recent activity.",
        discussion: """
        Agents with their version, last heartbeat and how far behind the fleet's
        logins they are; model versions with their validation figures; logins and
        failures in the window. --json prints the same as one JSON object.

        Examples:
          ipsight fleet status --config /etc/ipsight/ipsight.conf
          ipsight fleet status --config /etc/ipsight/ipsight.conf --json --window 7d
        """
    )

    @OptionGroup var options: FleetOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "The window logins and failures are counted in: seconds, or 30m, 24h, 7d.")
    var window = "24h"

    func run() throws {
        guard let seconds = Self.duration(window) else { throw ValidationError("--window: expected a duration such as 30m, 24h or 7d") }
        let (status, tls) = try options.withStore { (try await $0.status(window: seconds), try await $0.connectionTLS()) }
        if json {
            guard case .object(var fields) = Self.json(status) else { return }
            fields.insert(("connection_tls", tls.map(JSONValue.string) ?? .null), at: 1)
            print(JSONWriter.string(.object(fields)))
        } else {
            print("connection: " + (tls ?? "not encrypted (Unix socket or tls = off)"))
            print(Self.table(status))
        }
    }

    static func duration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        var number = text
        var unit = 1.0
        if let last = number.last, let u = units[last] { unit = u; number.removeLast() }
        guard let v = Double(number), v > 0, v.isFinite else { return nil }
        return v * unit
    }

    static func table(_ s: FleetStatus) -> String {
        var lines = ["schema version \(s.schemaVersion); last \(Format.duration(s.window)): \(s.loginsInWindow) logins, \(s.failuresInWindow) failures; \(s.undeliveredAlerts) alerts claimed, not delivered"]
        lines.append("")
        lines += columns([["HOST", "VERSION", "TRAINER", "LAST HEARTBEAT", "AGO", "UPLOADED TO", "BEHIND"]] + s.agents.map {
            [$0.hostName, $0.version, $0.trainer ? "yes" : "no", CivilTime.rfc3339($0.lastHeartbeat),
             Format.elapsed($0.heartbeatAge), String($0.lastLoginSequence), String($0.loginsBehind)]
        })
        if s.agents.isEmpty { lines.append("(no agent has sent a heartbeat)") }
        lines.append("")
        lines += columns([["MODEL", "CREATED", "TRAINED BY", "WINDOW", "BYTES", "SHA-256", "METRICS"]] + s.models.map {
            [String($0.version), CivilTime.rfc3339($0.createdAt), $0.trainedBy,
             CivilTime.rfc3339($0.windowStart) + " .. " + CivilTime.rfc3339($0.windowEnd), String($0.byteCount),
             String($0.sha256.prefix(12)), $0.metrics]
        })
        if s.models.isEmpty { lines.append("(no model published)") }
        return lines.joined(separator: "\n")
    }

    /// Left-aligned columns two spaces apart.
    static func columns(_ rows: [[String]]) -> [String] {
        var widths: [Int] = []
        for row in rows {
            for (i, cell) in row.enumerated() {
                if i == widths.count { widths.append(0) }
                widths[i] = max(widths[i], cell.count)
            }
        }
        return rows.map { row in
            row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count) }
                .joined(separator: "  ")
        }
    }

    static func json(_ s: FleetStatus) -> JSONValue {
        .object([
            ("schema_version", .number(Double(s.schemaVersion))),
            ("window_seconds", .number(s.window)),
            ("logins_in_window", .number(Double(s.loginsInWindow))),
            ("failures_in_window", .number(Double(s.failuresInWindow))),
            ("undelivered_alerts", .number(Double(s.undeliveredAlerts))),
            ("agents", .array(s.agents.map {
                .object([
                    ("host_name", .string($0.hostName)), ("version", .string($0.version)), ("trainer", .bool($0.trainer)),
                    ("last_heartbeat", .string(CivilTime.rfc3339($0.lastHeartbeat))), ("heartbeat_age_seconds", .number($0.heartbeatAge)),
                    ("last_login_sequence", .number(Double($0.lastLoginSequence))), ("logins_behind", .number(Double($0.loginsBehind))),
                ])
            })),
            ("models", .array(s.models.map {
                .object([
                    ("version", .number(Double($0.version))), ("created_at", .string(CivilTime.rfc3339($0.createdAt))),
                    ("trained_by", .string($0.trainedBy)), ("window_start", .string(CivilTime.rfc3339($0.windowStart))),
                    ("window_end", .string(CivilTime.rfc3339($0.windowEnd))), ("bytes", .number(Double($0.byteCount))),
                    ("sha256", .string($0.sha256)), ("metrics", (try? JSONValue.parse($0.metrics)) ?? .string($0.metrics)),
                ])
            })),
        ])
    }
}
