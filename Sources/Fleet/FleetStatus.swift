import IPSightCore
import PostgresNIO

/// What `ipsight fleet status` shows: the agents, the model versions, the window.
public struct FleetStatus: Sendable, Equatable {
    public struct Agent: Sendable, Equatable {
        public var hostName: String
        public var version: String
        public var trainer: Bool
        /// Seconds since the epoch.
        public var lastHeartbeat: Double
        /// Seconds since its last heartbeat (by the database's clock).
        public var heartbeatAge: Double
        /// Highest local sequence of its uploaded logins.
        public var lastLoginSequence: Int64
        /// Fleet logins written after the last one it has caught up to (by id: an estimate).
        public var loginsBehind: Int64
    }

    public struct Model: Sendable, Equatable {
        public var version: Int64
        public var sha256: String
        public var byteCount: Int64
        public var trainedBy: String
        public var windowStart: Double
        public var windowEnd: Double
        public var createdAt: Double
        /// Its validation figures, as the trainer published them (JSON text).
        public var metrics: String
    }

    public var schemaVersion: Int
    public var agents: [Agent]
    /// Newest first.
    public var models: [Model]
    /// Seconds: the counts below are of the last `window`.
    public var window: Double
    public var loginsInWindow: Int
    public var failuresInWindow: Int
    /// Alerts claimed and not yet marked delivered.
    public var undeliveredAlerts: Int
}

extension FleetStore {
    /// The fleet at a glance; `window` seconds of logins and failures counted,
    /// the newest `modelLimit` model versions listed (their bytes left in the database).
    public func status(window: Double = 86_400, modelLimit: Int = 10) async throws -> FleetStatus {
        let version = try await schemaVersion()
        guard version > 0 else { throw FleetError("the fleet database has no schema yet: run ipsight fleet migrate") }
        return try await fleetErrors {
            var status = FleetStatus(schemaVersion: version, agents: [], models: [], window: window,
                                     loginsInWindow: 0, failuresInWindow: 0, undeliveredAlerts: 0)
            let agents = try await client.query("""
                SELECT host_name, version, trainer, extract(epoch FROM last_heartbeat)::float8,
                       extract(epoch FROM now() - last_heartbeat)::float8, last_login_sequence,
                       greatest(coalesce((SELECT max(id) FROM logins), 0) - last_read_login_id, 0)
                FROM agents ORDER BY host_name
                """, logger: logger)
            for try await (host, agentVersion, trainer, heartbeat, age, sequence, behind)
                    in agents.decode((String, String, Bool, Double, Double, Int64, Int64).self) {
                status.agents.append(.init(hostName: host, version: agentVersion, trainer: trainer, lastHeartbeat: heartbeat,
                                           heartbeatAge: age, lastLoginSequence: sequence, loginsBehind: behind))
            }
            let models = try await client.query("""
                SELECT version, sha256, byte_count, trained_by, extract(epoch FROM window_start)::float8,
                       extract(epoch FROM window_end)::float8, extract(epoch FROM created_at)::float8, metrics::text
                FROM models ORDER BY version DESC LIMIT \(modelLimit)
                """, logger: logger)
            for try await (v, sha, bytes, by, start, end, created, metrics)
                    in models.decode((Int64, String, Int64, String, Double, Double, Double, String).self) {
                status.models.append(.init(version: v, sha256: sha, byteCount: bytes, trainedBy: by, windowStart: start,
                                           windowEnd: end, createdAt: created, metrics: metrics))
            }
            let counts = try await client.query("""
                SELECT (SELECT count(*) FROM logins WHERE occurred_at >= now() - make_interval(secs => \(window))),
                       (SELECT count(*) FROM failures WHERE occurred_at >= now() - make_interval(secs => \(window))),
                       (SELECT count(*) FROM alerts WHERE delivered_at IS NULL)
                """, logger: logger)
            for try await (logins, failures, alerts) in counts.decode((Int, Int, Int).self) {
                status.loginsInWindow = logins
                status.failuresInWindow = failures
                status.undeliveredAlerts = alerts
            }
            return status
        }
    }
}
