import Crypto
import IPSightCore
import Logging
import PostgresNIO

/// The fleet's shared state in PostgreSQL, for one agent (its host name stamps
/// every row it writes). Every call is one statement or one transaction on the
/// client's small pool; nothing here runs on a login's path.
public final class FleetStore: Sendable {
    public let config: FleetConfig
    let client: PostgresClient
    let logger: Logger

    public var hostName: String { config.settings.hostName }

    /// A store whose pool connects when first used; `run()` must be running for
    /// any call to complete (see `withStore`).
    public init(config: FleetConfig, logger: Logger) throws(FleetError) {
        self.config = config
        self.logger = logger
        // The pool's own log: its connection failures surface as the calls' errors,
        // and its "not running yet" notice is the normal start of `withStore`.
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        client = PostgresClient(configuration: try config.clientConfiguration(), backgroundLogger: background)
    }

    /// Runs the connection pool until the task is cancelled.
    public func run() async { await client.run() }

    /// Runs `body` with a store whose pool runs beside it, then shuts the pool down.
    @discardableResult
    public static func withStore<T: Sendable>(_ config: FleetConfig, logger: Logger,
                                              _ body: @Sendable (FleetStore) async throws -> T) async throws -> T {
        let store = try FleetStore(config: config, logger: logger)
        try await store.checkConnection()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            return try await body(store)
        }
    }

    /// Connects once outside the pool and hangs up: the pool retries a failing
    /// connection forever, so a one-shot use (a command, a test) checks first and
    /// fails at once with the server's reason (a wrong password, no such database).
    public func checkConnection() async throws {
        try await fleetErrors {
            let connection = try await PostgresConnection.connect(configuration: try config.connectionConfiguration(), id: 0, logger: logger)
            try await connection.close()
        }
    }

    /// The TLS protocol and cipher of a pooled connection as the server sees it
    /// (`pg_stat_ssl`); nil when it is not encrypted (a Unix socket, tls = off).
    public func connectionTLS() async throws -> String? {
        try await fleetErrors {
            let rows = try await client.query("SELECT version || ' ' || cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
                                              logger: logger)
            for try await text in rows.decode(String.self) { return text }
            return nil
        }
    }

    // MARK: schema

    /// Brings the schema to this binary's version; returns the versions applied.
    @discardableResult
    public func migrate() async throws -> [Int] {
        do {
            return try await fleetErrors { try await Migrations.migrate(client, logger: logger) }
        } catch let error as FleetError where error.message.contains("role \"ipsight_") {
            // The grants name the roles of the one-time setup.
            throw FleetError(error.message + ": run deploy/fleet/roles.sql once first (docs/fleet.md)")
        }
    }

    /// The applied schema version (0: never migrated).
    public func schemaVersion() async throws -> Int {
        try await fleetErrors { try await client.withConnection { try await Migrations.currentVersion($0, logger: logger) } }
    }

    // MARK: agents

    /// Records that this agent is alive (and its version, its catch-up position).
    /// Row-level security lets a role write only rows it created.
    public func heartbeat(agent: AgentHeartbeat) async throws {
        let readID = agent.readCursor?.id ?? 0
        _ = try await fleetErrors {
            try await client.query("""
                INSERT INTO agents (host_name, version, trainer, last_read_login_id)
                VALUES (\(agent.hostName), \(agent.version), \(agent.trainer), \(readID))
                ON CONFLICT (host_name) DO UPDATE SET
                    version = EXCLUDED.version, trainer = EXCLUDED.trainer, last_heartbeat = now(),
                    last_read_login_id = greatest(agents.last_read_login_id, EXCLUDED.last_read_login_id)
                """, logger: logger)
        }
    }

    // MARK: observations

    /// Uploads successful logins; returns how many were new (a retried batch: 0).
    @discardableResult
    public func upload(logins: [FleetObservation]) async throws -> Int {
        try await upload(logins, table: "logins", position: "last_login_sequence")
    }

    /// Uploads failed logins; returns how many were new.
    @discardableResult
    public func upload(failures: [FleetObservation]) async throws -> Int {
        try await upload(failures, table: "failures", position: "last_failure_sequence")
    }

    /// One statement per batch: the rows as arrays, unnested, the duplicates of an
    /// earlier upload skipped, and the agent's upload position moved forward.
    private func upload(_ rows: [FleetObservation], table: String, position: String) async throws -> Int {
        if rows.isEmpty { return 0 }
        for row in rows where IPAddress(row.address) == nil {
            throw FleetError("'\(row.address)' is not an IP address (local sequence \(row.localSequence))")
        }
        var query = PostgresQuery(unsafeSQL: """
            WITH new AS (
                INSERT INTO \(table) (host_name, local_sequence, user_name, address, service, occurred_at)
                SELECT $1, s, u, a::inet, v, to_timestamp(t)
                FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::float8[]) AS r(s, u, a, v, t)
                ON CONFLICT (host_name, local_sequence, occurred_at) DO NOTHING
                RETURNING 1
            ), moved AS (
                UPDATE agents SET \(position) = greatest(\(position), (SELECT max(s) FROM unnest($2::int8[]) AS m(s)))
                WHERE host_name = $1
                RETURNING 1
            )
            SELECT count(*) FROM new
            """)
        query.binds.append(hostName)
        query.binds.append(rows.map(\.localSequence))
        query.binds.append(rows.map(\.user))
        query.binds.append(rows.map(\.address))
        query.binds.append(rows.map(\.service))
        query.binds.append(rows.map(\.time))
        return try await fleetErrors {
            for try await count in try await client.query(query, logger: logger).decode(Int.self) { return count }
            return 0
        }
    }

    /// Uploads analyst verdicts; returns how many were new.
    @discardableResult
    public func upload(feedback: [FleetFeedback]) async throws -> Int {
        if feedback.isEmpty { return 0 }
        let query: PostgresQuery = """
            WITH new AS (
                INSERT INTO feedback (host_name, local_sequence, user_name, address, verdict, given_at, service)
                SELECT \(hostName), s, u, a::inet, v, to_timestamp(t), sv
                FROM unnest(\(feedback.map(\.localSequence))::int8[], \(feedback.map(\.user))::text[],
                            \(feedback.map(\.address))::text[], \(feedback.map(\.verdict.rawValue))::text[],
                            \(feedback.map(\.time))::float8[], \(feedback.map(\.service))::text[]) AS r(s, u, a, v, t, sv)
                ON CONFLICT (host_name, local_sequence) DO NOTHING
                RETURNING 1
            )
            SELECT count(*) FROM new
            """
        return try await fleetErrors {
            for try await count in try await client.query(query, logger: logger).decode(Int.self) { return count }
            return 0
        }
    }

    /// The fleet's verdicts after `cursor` (read like `logins(after:)`), and the
    /// cursor to ask from next: a verdict given on any host reaches every host.
    public func feedback(after cursor: FleetCursor, limit: Int = 10_000) async throws -> (verdicts: [FleetVerdict], next: FleetCursor) {
        let query: PostgresQuery = """
            SELECT tx::text, id, host_name, local_sequence, user_name, host(address), verdict,
                   extract(epoch FROM given_at)::float8, service
            FROM feedback
            WHERE (tx, id) > (\(String(cursor.transaction))::xid8, \(cursor.id))
              AND tx < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY feedback.tx, feedback.id
            LIMIT \(limit)
            """
        return try await fleetErrors {
            var verdicts: [FleetVerdict] = []
            var next = cursor
            let rows = try await client.query(query, logger: logger)
            for try await (tx, id, host, sequence, user, address, verdict, time, service)
                    in rows.decode((String, Int64, String, Int64, String, String, String, Double, String).self) {
                next = FleetCursor(transaction: UInt64(tx) ?? 0, id: id)
                guard let verdict = FleetFeedback.Verdict(rawValue: verdict) else { continue }
                verdicts.append(FleetVerdict(cursor: next, hostName: host, feedback: FleetFeedback(
                    localSequence: sequence, user: user, address: address, verdict: verdict, time: time, service: service)))
            }
            return (verdicts, next)
        }
    }

    /// The fleet's logins after `cursor`, in the order they became readable, at most
    /// `limit`. Only rows written by transactions older than every running one are
    /// returned: a transaction that took a lower id and commits later is never
    /// stepped over; it shows up on a later call.
    public func logins(after cursor: FleetCursor, limit: Int = 10_000) async throws -> FleetLoginPage {
        try await observations(in: "logins", after: cursor, limit: limit)
    }

    /// The fleet's failed logins after `cursor`, read like `logins(after:)`: every
    /// agent counts every host's failures for the credential-stuffing check.
    public func failures(after cursor: FleetCursor, limit: Int = 10_000) async throws -> FleetLoginPage {
        try await observations(in: "failures", after: cursor, limit: limit)
    }

    /// The order names the table's columns: a bare `tx` would be the text-cast output
    /// column, sorted as text (out of order, and not by the index).
    private func observations(in table: String, after cursor: FleetCursor, limit: Int) async throws -> FleetLoginPage {
        var query = PostgresQuery(unsafeSQL: """
            SELECT tx::text, id, host_name, local_sequence, user_name, host(address), service,
                   extract(epoch FROM occurred_at)::float8
            FROM \(table)
            WHERE (tx, id) > ($1::xid8, $2)
              AND tx < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY \(table).tx, \(table).id
            LIMIT $3
            """)
        query.binds.append(String(cursor.transaction))
        query.binds.append(cursor.id)
        query.binds.append(limit)
        return try await fleetErrors {
            var page = FleetLoginPage(logins: [], next: cursor)
            let rows = try await client.query(query, logger: logger)
            for try await (tx, id, host, sequence, user, address, service, time)
                    in rows.decode((String, Int64, String, Int64, String, String, String, Double).self) {
                let at = FleetCursor(transaction: UInt64(tx) ?? 0, id: id)
                page.logins.append(FleetLogin(cursor: at, hostName: host, observation: FleetObservation(
                    localSequence: sequence, user: user, address: address, service: service, time: time)))
                page.next = at
            }
            return page
        }
    }

    /// How far the database's transactions go and the highest local sequence it
    /// holds of this host's rows: after a restore from an older backup, an agent's
    /// read cursors and upload positions can be ahead of both (see `FleetStanding`).
    public func standing() async throws -> FleetStanding {
        try await fleetErrors {
            let rows = try await client.query("""
                SELECT pg_snapshot_xmax(pg_current_snapshot())::text,
                       (SELECT coalesce(max(local_sequence), 0) FROM logins WHERE host_name = \(hostName)),
                       (SELECT coalesce(max(local_sequence), 0) FROM failures WHERE host_name = \(hostName)),
                       (SELECT coalesce(max(local_sequence), 0) FROM feedback WHERE host_name = \(hostName))
                """, logger: logger)
            for try await (xmax, logins, failures, feedback) in rows.decode((String, Int64, Int64, Int64).self) {
                return FleetStanding(nextTransaction: UInt64(xmax) ?? 0, logins: logins, failures: failures, feedback: feedback)
            }
            throw FleetError("the database did not say where it stands")
        }
    }

    // MARK: alert delivery

    /// Claims the delivery of one alert for `agent`: `.mine` for exactly one caller
    /// fleet-wide (and for its holder asking again). A claim not marked delivered
    /// within `lease` seconds may be taken over (its holder died), so an alert is not
    /// lost with an agent.
    public func claimDelivery(alertKey: String, agent: String, lease: Double = 300) async throws -> FleetClaim {
        try await fleetErrors {
            let rows = try await client.query("""
                WITH claim AS (
                    INSERT INTO alerts (alert_key, claimed_by) VALUES (\(alertKey), \(agent))
                    ON CONFLICT (alert_key) DO UPDATE
                        SET claimed_by = EXCLUDED.claimed_by, claimed_at = now(), claims = alerts.claims + 1
                        WHERE alerts.delivered_at IS NULL
                          AND (alerts.claimed_by = EXCLUDED.claimed_by
                               OR alerts.claimed_at < now() - make_interval(secs => \(lease)))
                    RETURNING 1
                )
                SELECT EXISTS (SELECT FROM claim),
                       coalesce((SELECT delivered_at IS NOT NULL FROM alerts WHERE alert_key = \(alertKey)), false)
                """, logger: logger)
            for try await (mine, delivered) in rows.decode((Bool, Bool).self) {
                return mine ? .mine : delivered ? .delivered : .held
            }
            return .held
        }
    }

    /// Marks an alert delivered by the agent that holds its claim; false when the
    /// claim is someone else's (it was taken over).
    @discardableResult
    public func markDelivered(alertKey: String, agent: String) async throws -> Bool {
        try await fleetErrors {
            let rows = try await client.query("""
                UPDATE alerts SET delivered_at = now()
                WHERE alert_key = \(alertKey) AND claimed_by = \(agent) AND delivered_at IS NULL
                RETURNING 1
                """, logger: logger)
            for try await _ in rows { return true }
            return false
        }
    }

    // MARK: models

    /// Publishes a model version in one statement (a killed publisher leaves none)
    /// and notifies listeners on `ipsight_models` when it commits.
    @discardableResult
    public func publishModel(_ model: ModelPublication) async throws -> Int64 {
        try await fleetErrors {
            try await transaction { try await ModelRows.publish(model, on: $0, logger: self.logger) }
        }
    }

    /// The newest version's number (nil: none published), without its bytes: what
    /// the agents poll, downloading a model only when it is newer than theirs.
    public func latestModelVersion() async throws -> Int64? {
        try await fleetErrors {
            for try await version in try await client.query("SELECT max(version) FROM models", logger: logger).decode(Int64?.self) {
                return version
            }
            return nil
        }
    }

    /// The newest model version, its checksum verified; nil when none is published.
    public func latestModel() async throws -> ModelVersion? {
        try await fleetErrors { try await client.withConnection { try await ModelRows.latest(on: $0, logger: self.logger) } }
    }

    // MARK: helpers

    /// A transaction on a pooled connection; the error thrown is the body's (or the
    /// commit's), not the driver's wrapper.
    func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await inTransaction(client, logger: logger, body)
    }
}

/// A transaction on one of the pool's connections; rolled back if `body` throws.
/// The error thrown is the body's (or the commit's), not the driver's wrapper.
func inTransaction<T: Sendable>(_ client: PostgresClient, logger: Logger,
                                _ body: (PostgresConnection) async throws -> T) async throws -> T {
    do {
        return try await client.withTransaction(logger: logger) { try await body($0) }
    } catch let error as PostgresTransactionError {
        throw error.closureError ?? error.commitError ?? error.beginError ?? error
    }
}

/// Runs `body`, turning the driver's errors (whose descriptions hide the server's
/// message) into FleetErrors that say what the server said.
func fleetErrors<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let error as FleetError {
        throw error
    } catch let error as PostgresTransactionError {
        throw describe(error.closureError ?? error.commitError ?? error.beginError ?? error)
    } catch {
        throw describe(error)
    }
}

func describe(_ error: any Error) -> FleetError {
    if let error = error as? FleetError { return error }
    if let error = error as? PSQLError {
        if let message = error.serverInfo?[.message] {
            let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return FleetError("the database refused: \(message)\(code)")
        }
        let underlying = error.underlying.map { "\($0)" } ?? ""
        if underlying.contains("CERTIFICATE_VERIFY_FAILED") {
            return FleetError("the server's TLS certificate did not verify (not signed by a trusted CA, or not for this host): "
                              + "with a private CA, name it in tls_ca (\(underlying))")
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown:
            return FleetError("cannot reach the fleet database: \(error.underlying.map { "\($0)" } ?? "\(error.code)")")
        default:
            return FleetError("fleet database error: \(error.code)\(error.underlying.map { ": \($0)" } ?? "")")
        }
    }
    return FleetError("fleet database error: \(error)")
}

/// The SQL of model versions, shared by the store's pool and the trainer lock's
/// own connection.
enum ModelRows {
    static func publish(_ model: ModelPublication, on connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        let checksum = sha256Hex(model.model)
        let rows = try await connection.query("""
            INSERT INTO models (model, byte_count, sha256, hyperparameters, calibration, metrics,
                                trained_by, window_start, window_end)
            VALUES (\(ByteBuffer(bytes: model.model)), \(model.model.count), \(checksum),
                    \(model.hyperparameters)::jsonb, \(model.calibration)::jsonb, \(model.metrics)::jsonb,
                    \(model.trainedBy), to_timestamp(\(model.windowStart)), to_timestamp(\(model.windowEnd)))
            RETURNING version
            """, logger: logger)
        var version: Int64 = 0
        for try await v in rows.decode(Int64.self) { version = v }
        try await connection.query("SELECT pg_notify('ipsight_models', \(String(version)))", logger: logger)
        return version
    }

    static func latest(on connection: PostgresConnection, logger: Logger) async throws -> ModelVersion? {
        let rows = try await connection.query("""
            SELECT version, model, sha256, hyperparameters::text, calibration::text, metrics::text, trained_by,
                   extract(epoch FROM window_start)::float8, extract(epoch FROM window_end)::float8,
                   extract(epoch FROM created_at)::float8
            FROM models ORDER BY version DESC LIMIT 1
            """, logger: logger)
        for try await (version, bytes, checksum, hyperparameters, calibration, metrics, trainedBy, start, end, created)
                in rows.decode((Int64, ByteBuffer, String, String, String, String, String, Double, Double, Double).self) {
            let model = Array(bytes.readableBytesView)
            let actual = sha256Hex(model)
            guard actual == checksum else {
                throw FleetError("model version \(version) is corrupt: its SHA-256 is \(actual), the row says \(checksum)")
            }
            return ModelVersion(version: version, sha256: checksum, publication: ModelPublication(
                model: model, hyperparameters: hyperparameters, calibration: calibration, metrics: metrics,
                trainedBy: trainedBy, windowStart: start, windowEnd: end), createdAt: created)
        }
        return nil
    }

    static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
