import IPSightCore

/// A login or a failure as an agent uploads it. `localSequence` is the agent's own
/// number for the observation (its SQLite row): with the host name and the time it
/// is the idempotency key, so re-sending after an outage never doubles a row.
public struct FleetObservation: Sendable, Equatable {
    public var localSequence: Int64
    public var user: String
    /// Canonical text of the remote address (`LoginEvent.ip`).
    public var address: String
    public var service: String
    /// Seconds since the epoch, UTC.
    public var time: Double

    public init(localSequence: Int64, user: String, address: String, service: String, time: Double) {
        self.localSequence = localSequence
        self.user = user
        self.address = address
        self.service = service
        self.time = time
    }
}

/// Where an agent is in the fleet's stream of logins: (writing transaction, id),
/// both increasing in the order rows become readable. Keep the last one read.
public struct FleetCursor: Sendable, Equatable, Hashable, Comparable {
    public var transaction: UInt64
    public var id: Int64
    public static let start = FleetCursor(transaction: 0, id: 0)

    public init(transaction: UInt64, id: Int64) {
        self.transaction = transaction
        self.id = id
    }

    public static func < (a: FleetCursor, b: FleetCursor) -> Bool { (a.transaction, a.id) < (b.transaction, b.id) }
}

/// A login from any host of the fleet, as catch-up reads it.
public struct FleetLogin: Sendable, Equatable {
    public var cursor: FleetCursor
    public var hostName: String
    public var observation: FleetObservation
}

/// One page of catch-up: the logins after the cursor, and the cursor to ask from next.
public struct FleetLoginPage: Sendable, Equatable {
    public var logins: [FleetLogin]
    public var next: FleetCursor
}

/// An analyst's verdict on a login, as an agent uploads it.
public struct FleetFeedback: Sendable, Equatable {
    public enum Verdict: String, Sendable { case safe, compromised }
    public var localSequence: Int64
    public var user: String
    public var address: String
    public var verdict: Verdict
    public var time: Double
    /// The service the verdict is about ("": the user on every service).
    public var service: String

    public init(localSequence: Int64, user: String, address: String, verdict: Verdict, time: Double, service: String = "") {
        self.localSequence = localSequence
        self.user = user
        self.address = address
        self.verdict = verdict
        self.time = time
        self.service = service
    }
}

/// A verdict given on any host, as catch-up reads it.
public struct FleetVerdict: Sendable, Equatable {
    public var cursor: FleetCursor
    public var hostName: String
    public var feedback: FleetFeedback
}

/// What an agent says about itself on each heartbeat.
public struct AgentHeartbeat: Sendable, Equatable {
    public var hostName: String
    public var version: String
    public var trainer: Bool
    /// Last fleet login it has caught up to, for its lag in `fleet status`.
    public var readCursor: FleetCursor?

    public init(hostName: String, version: String, trainer: Bool, readCursor: FleetCursor? = nil) {
        self.hostName = hostName
        self.version = version
        self.trainer = trainer
        self.readCursor = readCursor
    }
}

/// A model to publish: the model file's bytes and what describes it (JSON texts).
public struct ModelPublication: Sendable, Equatable {
    public var model: [UInt8]
    public var hyperparameters: String
    public var calibration: String
    public var metrics: String
    public var trainedBy: String
    public var windowStart: Double
    public var windowEnd: Double

    public init(model: [UInt8], hyperparameters: String, calibration: String, metrics: String,
                trainedBy: String, windowStart: Double, windowEnd: Double) {
        self.model = model
        self.hyperparameters = hyperparameters
        self.calibration = calibration
        self.metrics = metrics
        self.trainedBy = trainedBy
        self.windowStart = windowStart
        self.windowEnd = windowEnd
    }
}

/// A published model version, its bytes verified against its checksum.
public struct ModelVersion: Sendable, Equatable {
    public var version: Int64
    public var sha256: String
    public var publication: ModelPublication
    public var createdAt: Double
}

/// Where the database stands for one agent. A read cursor at or past
/// `nextTransaction` names a transaction this database never had (it was restored
/// from an older backup): the agent reads again from the start. An upload position
/// past the highest sequence held means rows the restore lost: sent again.
public struct FleetStanding: Sendable, Equatable {
    public var nextTransaction: UInt64
    public var logins: Int64
    public var failures: Int64
    public var feedback: Int64

    public init(nextTransaction: UInt64, logins: Int64, failures: Int64, feedback: Int64) {
        self.nextTransaction = nextTransaction
        self.logins = logins
        self.failures = failures
        self.feedback = feedback
    }
}

/// The answer to a delivery claim.
public enum FleetClaim: Sendable, Equatable {
    /// The caller delivers the alert.
    case mine
    /// Another agent delivered it.
    case delivered
    /// Another agent holds the claim and has not delivered it yet.
    case held
}
