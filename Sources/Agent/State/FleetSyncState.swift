import IPSightCore
import Synchronization

/// How the agent's sharing with its fleet goes, for `/v1/status` and `ipsight
/// status`. The fleet sync service (which owns the database connection) writes
/// it; the API reads it. Plain values, so the agent does not depend on the driver.
public final class FleetSyncState: Sendable {
    public enum Connection: String, Sendable {
        /// Started, no sync attempt finished yet.
        case connecting
        /// The last sync reached the database.
        case connected
        /// The last sync failed: the agent decides on local data and keeps its logins to upload later.
        case degraded
    }

    public struct Snapshot: Sendable, Equatable {
        public var hostName: String
        public var connection: Connection = .connecting
        /// When `connection` last changed (Unix time).
        public var since: Double
        public var lastError: String?
        /// This host's logins not yet in the database.
        public var uploadBacklog = 0
        /// Logins uploaded since start (new rows the database accepted).
        public var uploaded = 0
        /// Logins from other hosts learnt since start.
        public var received = 0
        /// When a sync last reached the database (Unix time).
        public var lastSync: Double?
    }

    private let state: Mutex<Snapshot>

    public init(hostName: String, now: Double = Clock.wall) {
        state = Mutex(Snapshot(hostName: hostName, since: now))
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// A sync reached the database.
    public func succeeded(backlog: Int, uploaded: Int, received: Int, now: Double = Clock.wall) {
        state.withLock {
            if $0.connection != .connected { $0.connection = .connected; $0.since = now }
            $0.lastError = nil
            $0.uploadBacklog = backlog
            $0.uploaded += uploaded
            $0.received += received
            $0.lastSync = now
        }
    }

    /// A sync failed; what was done before the failure still counts.
    public func failed(_ error: String, backlog: Int?, uploaded: Int, received: Int, now: Double = Clock.wall) {
        state.withLock {
            if $0.connection != .degraded { $0.connection = .degraded; $0.since = now }
            $0.lastError = error
            if let backlog { $0.uploadBacklog = backlog }
            $0.uploaded += uploaded
            $0.received += received
        }
    }

    /// The `fleet` object of `/v1/status`.
    public func json(now: Double = Clock.wall) -> JSONValue {
        let s = snapshot
        return .object([
            ("host_name", .string(s.hostName)),
            ("state", .string(s.connection.rawValue)),
            ("since", .number(s.since.rounded())),
            ("last_error", s.lastError.map(JSONValue.string) ?? .null),
            ("upload_backlog", .number(Double(s.uploadBacklog))),
            ("uploaded", .number(Double(s.uploaded))),
            ("received", .number(Double(s.received))),
            ("seconds_since_sync", s.lastSync.map { .number(max(0, now - $0).rounded()) } ?? .null),
        ])
    }
}
