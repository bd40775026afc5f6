import Logging
import PostgresNIO

/// The trainer election: a PostgreSQL session advisory lock on a connection of its
/// own. The server releases it when that connection ends, however it ends: a
/// trainer killed mid-training frees the lock for the next agent that asks.
public struct TrainerLease: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    /// Whether the lock's connection is still open (the lock is still ours).
    public var isHeld: Bool { !connection.isClosed }

    /// Publishes on the lock's own connection: if the lock was lost (its connection
    /// closed), the publish fails instead of racing a new trainer.
    public func publishModel(_ model: ModelPublication) async throws -> Int64 {
        try await fleetErrors {
            do {
                return try await connection.withTransaction(logger: logger) { try await ModelRows.publish(model, on: $0, logger: logger) }
            } catch let error as PostgresTransactionError {
                throw error.closureError ?? error.commitError ?? error.beginError ?? error
            }
        }
    }

    /// The database server's process id for the lock's connection (for tests and logs).
    public func backendProcessID() async throws -> Int {
        try await fleetErrors {
            for try await pid in try await connection.query("SELECT pg_backend_pid()", logger: logger).decode(Int.self) { return pid }
            throw FleetError("no backend process id")
        }
    }
}

extension FleetStore {
    /// Key of the trainer lock ("ipsight" + 2); advisory locks are per database.
    static let trainerLockKey: Int64 = 0x6970_7369_6768_7402

    /// Runs `body` if this agent wins the trainer lock, and returns its result; nil
    /// at once when another agent holds it. The lock is released when `body` ends
    /// (its connection is closed).
    public func withTrainerLock<T: Sendable>(_ body: (TrainerLease) async throws -> T) async throws -> T? {
        guard config.settings.trainer else { throw FleetError("this agent is not a trainer ([fleet] trainer = false)") }
        let connection = try await fleetErrors {
            try await PostgresConnection.connect(configuration: try config.connectionConfiguration(), id: 1, logger: logger)
        }
        do {
            let won = try await fleetErrors {
                for try await won in try await connection.query("SELECT pg_try_advisory_lock(\(Self.trainerLockKey))", logger: logger).decode(Bool.self) {
                    return won
                }
                return false
            }
            guard won else {
                try? await connection.close()
                return nil
            }
            let result = try await body(TrainerLease(connection: connection, logger: logger))
            // Unlocked before closing: the server frees a closed session's locks only
            // once its process notices, and the next trainer may already be asking.
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.trainerLockKey))", logger: logger)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

extension FleetStore {
    /// Calls `published` with each model version published from now on (NOTIFY on
    /// `ipsight_models`), on a connection of its own, until the task is cancelled;
    /// throws when the connection fails, so that the caller reconnects (and polls
    /// meanwhile: a notification sent while no one listened is not sent again).
    public func watchModels(_ published: @escaping @Sendable (Int64) -> Void) async throws {
        let connection = try await fleetErrors {
            try await PostgresConnection.connect(configuration: try config.connectionConfiguration(), id: 2, logger: logger)
        }
        do {
            try await connection.listen(on: "ipsight_models") { notifications in
                for try await notification in notifications { published(Int64(notification.payload) ?? 0) }
            }
            try? await connection.close()
        } catch {
            try? await connection.close()
            if Task.isCancelled { return }
            throw FleetError("listening for new models: \(error)")
        }
    }
}
