import Logging
import PostgresNIO

/// The fleet's schema, owned by this project: numbered migrations, each applied once
/// in its own transaction and recorded in `schema_migrations`.
///
/// A migration is a list of statements (the driver's extended protocol runs one
/// statement per query). Never edit a released migration: add the next one.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    public var statements: [String]
}

public enum Migrations {
    /// Key of the transaction-scoped advisory lock that serialises migrators: two
    /// agents upgraded at once apply each migration once ("ipsight" + 1).
    static let lockKey: Int64 = 0x6970_7369_6768_7401

    public static var latestVersion: Int { all.last!.version }

    public static let all: [Migration] = [
        Migration(version: 1, name: "fleet state: agents, logins, failures, feedback, alerts, models", statements: [
            // One row per agent (its host name). role_name is the database role that
            // wrote it: row-level security lets an agent's role update only its own row.
            """
            CREATE TABLE agents (
                host_name text PRIMARY KEY CHECK (length(host_name) BETWEEN 1 AND 253),
                role_name name NOT NULL DEFAULT current_user,
                version text NOT NULL,
                trainer boolean NOT NULL DEFAULT false,
                first_seen timestamptz NOT NULL DEFAULT now(),
                last_heartbeat timestamptz NOT NULL DEFAULT now(),
                -- highest local sequence of its uploaded logins and failures
                last_login_sequence bigint NOT NULL DEFAULT 0,
                last_failure_sequence bigint NOT NULL DEFAULT 0,
                -- how far it has caught up on the fleet's logins (for its lag)
                last_read_login_id bigint NOT NULL DEFAULT 0
            )
            """,
            "ALTER TABLE agents ENABLE ROW LEVEL SECURITY",
            // Every agent reads every row (status); writes only its own.
            "CREATE POLICY agents_read ON agents FOR SELECT USING (true)",
            "CREATE POLICY agents_insert_own ON agents FOR INSERT WITH CHECK (role_name = current_user)",
            "CREATE POLICY agents_update_own ON agents FOR UPDATE USING (role_name = current_user) WITH CHECK (role_name = current_user)",

            // Successful logins. (host_name, local_sequence) is the idempotency key: an
            // agent numbers its observations locally and re-uploads after an outage
            // without doubling them. occurred_at is part of the keys so that the table
            // can become partitioned by time (a partitioned table's unique keys must
            // contain the partition key; a retry carries the same time, so it still
            // conflicts). tx is the writing transaction: the catch-up cursor is
            // (tx, id), read only below the oldest running transaction, so a reader
            // never steps over an id whose transaction commits later.
            """
            CREATE TABLE logins (
                id bigint GENERATED ALWAYS AS IDENTITY,
                tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
                host_name text NOT NULL,
                local_sequence bigint NOT NULL CHECK (local_sequence > 0),
                user_name text NOT NULL,
                address inet NOT NULL,
                service text NOT NULL,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (id, occurred_at),
                UNIQUE (host_name, local_sequence, occurred_at)
            )
            """,
            "CREATE INDEX logins_catch_up ON logins (tx, id)",
            "CREATE INDEX logins_occurred ON logins USING brin (occurred_at)",
            "CREATE INDEX logins_user ON logins (user_name, occurred_at)",

            // Failed logins, counted fleet-wide per address (credential stuffing,
            // spraying): the same idempotency key as logins.
            """
            CREATE TABLE failures (
                id bigint GENERATED ALWAYS AS IDENTITY,
                host_name text NOT NULL,
                local_sequence bigint NOT NULL CHECK (local_sequence > 0),
                user_name text NOT NULL,
                address inet NOT NULL,
                service text NOT NULL,
                occurred_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (id, occurred_at),
                UNIQUE (host_name, local_sequence, occurred_at)
            )
            """,
            "CREATE INDEX failures_address ON failures (address, occurred_at)",

            // Analyst verdicts on one login (user, address), from any host or the API;
            // every agent reads them all, by the same (tx, id) cursor as logins.
            """
            CREATE TABLE feedback (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
                host_name text NOT NULL,
                local_sequence bigint NOT NULL CHECK (local_sequence > 0),
                user_name text NOT NULL,
                address inet NOT NULL,
                verdict text NOT NULL CHECK (verdict IN ('safe', 'compromised')),
                given_at timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                UNIQUE (host_name, local_sequence)
            )
            """,
            "CREATE INDEX feedback_catch_up ON feedback (tx, id)",

            // One row per alert (its key, the same on every host that sees the login):
            // whoever inserts it delivers it. An undelivered claim older than the
            // lease may be taken over, so an agent that died holding it loses nothing.
            """
            CREATE TABLE alerts (
                alert_key text PRIMARY KEY CHECK (length(alert_key) BETWEEN 1 AND 200),
                claimed_by text NOT NULL,
                claimed_at timestamptz NOT NULL DEFAULT now(),
                claims integer NOT NULL DEFAULT 1,
                delivered_at timestamptz
            )
            """,
            "CREATE INDEX alerts_undelivered ON alerts (claimed_at) WHERE delivered_at IS NULL",

            // Versioned models. A version is one INSERT: a trainer killed mid-publish
            // leaves no row. The checksum is checked by every download.
            """
            CREATE TABLE models (
                version bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                model bytea NOT NULL,
                byte_count bigint NOT NULL CHECK (byte_count = octet_length(model)),
                sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
                hyperparameters jsonb NOT NULL,
                calibration jsonb NOT NULL,
                metrics jsonb NOT NULL,
                trained_by text NOT NULL,
                window_start timestamptz NOT NULL,
                window_end timestamptz NOT NULL CHECK (window_end >= window_start),
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,

            // Least privilege for the roles deploy/fleet/roles.sql creates: agents
            // insert and read observations, read models, claim deliveries and keep
            // their own agents row; trainers (members of ipsight_agent) also publish
            // models. Nobody but the owner deletes.
            "GRANT USAGE ON SCHEMA public TO ipsight_agent",
            "GRANT SELECT ON schema_migrations TO ipsight_agent",
            "GRANT SELECT, INSERT, UPDATE ON agents TO ipsight_agent",
            "GRANT SELECT, INSERT ON logins, failures, feedback TO ipsight_agent",
            "GRANT SELECT, INSERT, UPDATE (claimed_by, claimed_at, claims, delivered_at) ON alerts TO ipsight_agent",
            "GRANT SELECT ON models TO ipsight_agent",
            "GRANT INSERT ON models TO ipsight_trainer",
        ]),
        // Every agent counts every host's failures (credential stuffing spread over
        // the fleet): read by the same (tx, id) cursor as logins.
        // A verdict names the service too: an entity may be a user on one service.
        Migration(version: 2, name: "failures readable in commit order; the service of a verdict", statements: [
            "ALTER TABLE failures ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id()",
            "CREATE INDEX failures_catch_up ON failures (tx, id)",
            // Agents count failures from what they catch up, not by address in the database.
            "DROP INDEX failures_address",
            "ALTER TABLE feedback ADD COLUMN service text NOT NULL DEFAULT ''",
        ]),
    ]

    /// Applies the migrations the database lacks, each in its own transaction under
    /// an advisory lock; returns the versions applied (none: already current). A
    /// database at a newer version than this binary knows is refused.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        var applied: [Int] = []
        for migration in all {
            let didApply = try await inTransaction(client, logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
                let current = try await currentVersion(connection, logger: logger)
                if current > latestVersion { throw newerSchema(current) }
                if current >= migration.version { return false }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger)
                return true
            }
            if didApply {
                logger.info("applied fleet schema migration", metadata: ["version": "\(migration.version)"])
                applied.append(migration.version)
            }
        }
        return applied
    }

    /// The highest applied version; 0 for a database never migrated.
    static func currentVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        var present = false
        let exists = try await connection.query("SELECT to_regclass('schema_migrations') IS NOT NULL", logger: logger)
        for try await value in exists.decode(Bool.self) { present = value }
        guard present else { return 0 }
        let rows = try await connection.query("SELECT coalesce(max(version), 0)::int8 FROM schema_migrations", logger: logger)
        for try await version in rows.decode(Int.self) { return version }
        return 0
    }

    static func newerSchema(_ version: Int) -> FleetError {
        FleetError("the fleet database is at schema version \(version), newer than this ipsight knows (\(latestVersion)): upgrade ipsight on this host")
    }
}
