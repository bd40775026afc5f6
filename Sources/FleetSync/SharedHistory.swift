import Agent
import Detection
import Dispatch
import Fleet
import IPSightCore
import SQLiteStore

/// The agent's side of the sync: its SQLite store through a connection of its own
/// (the store is WAL, so reading never waits on the pipeline's writes), used from
/// one serial queue off Swift's shared pool, and its detector.
///
/// What it shares comes in two streams, each with its own positions in the
/// store's `source_state`: the upload position (the highest own row the database
/// acknowledged) and the (transaction, id) cursor of the fleet's rows caught up to.
/// Successful logins teach the detector where entities log in from; failed ones
/// count toward the credential-stuffing check on every host.
final class SharedHistory: @unchecked Sendable {
    enum Stream: Sendable {
        case logins, failures, feedback

        var uploadedKey: String {
            switch self {
            case .logins: "fleet:uploaded"
            case .failures: "fleet:uploaded-failures"
            case .feedback: "fleet:uploaded-feedback"
            }
        }
        var readKey: String {
            switch self {
            case .logins: "fleet:read"
            case .failures: "fleet:read-failures"
            case .feedback: "fleet:read-feedback"
            }
        }
    }

    struct Positions: Sendable {
        var uploaded: Int64
        var read: FleetCursor
    }

    private let queue = DispatchQueue(label: "ipsight-fleet-store")
    /// Touched only on `queue`.
    private var store: ObservationStore?
    private let path: String
    private let detector: Detector
    private let hostName: String

    init(path: String, detector: Detector, hostName: String) {
        self.path = path
        self.detector = detector
        self.hostName = hostName
    }

    /// Runs `body` on the queue with the connection, opened on first use.
    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (ObservationStore) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result {
                    do {
                        if self.store == nil { self.store = try ObservationStore(path: self.path) }
                        return try body(self.store!)
                    } catch let error as SQLiteError {
                        throw FleetError("the local store: \(error)")
                    }
                })
            }
        }
    }

    /// Where the upload and the catch-up of `stream` stand.
    func positions(_ stream: Stream) async throws -> Positions {
        try await onQueue { store in
            let saved = try store.positions()
            return Positions(uploaded: saved[stream.uploadedKey].flatMap { Int64($0) } ?? 0,
                             read: saved[stream.readKey].flatMap(FleetCursor.init(text:)) ?? .start)
        }
    }

    /// This host's rows of `stream` after `sequence` to upload, at most `limit`.
    func pendingUploads(_ stream: Stream, after sequence: Int64, limit: Int) async throws -> [FleetObservation] {
        try await onQueue { store in
            let rows: [(sequence: Int64, observation: Observation)]
            switch stream {
            case .logins: rows = try store.ownLearnedLogins(after: sequence, limit: limit)
            case .failures: rows = try store.ownFailures(after: sequence, limit: limit)
            case .feedback: preconditionFailure("verdicts go up through pendingFeedback")
            }
            return rows.map { row in
                FleetObservation(localSequence: row.sequence, user: row.observation.user, address: row.observation.ip,
                                 service: row.observation.service, time: row.observation.time)
            }
        }
    }

    /// Saved only after the database committed the upload: a crash in between sends
    /// the rows again, which their idempotency keys make harmless.
    func saveUploaded(_ stream: Stream, _ sequence: Int64) async throws {
        try await onQueue { try $0.save([stream.uploadedKey: String(sequence)]) }
    }

    /// Own rows of every stream not uploaded yet.
    func backlog() async throws -> Int {
        try await onQueue { store in
            let saved = try store.positions()
            func position(_ stream: Stream) -> Int64 { saved[stream.uploadedKey].flatMap { Int64($0) } ?? 0 }
            return try store.ownLearnedCount(after: position(.logins)) + store.ownFailureCount(after: position(.failures))
                + store.loggedFeedbackCount(after: position(.feedback))
        }
    }

    /// Brings the positions back to what the database holds (see `FleetStanding`);
    /// returns what was moved, in words. Rows read again are not stored twice (the
    /// store knows them by host and sequence); rows sent again are skipped by the
    /// database's keys.
    func reconcile(with standing: FleetStanding) async throws -> [String] {
        try await onQueue { store in
            let saved = try store.positions()
            var moved: [String: String] = [:]
            var said: [String] = []
            let held: [(Stream, Int64)] = [(.logins, standing.logins), (.failures, standing.failures), (.feedback, standing.feedback)]
            for (stream, highest) in held {
                let uploaded = saved[stream.uploadedKey].flatMap { Int64($0) } ?? 0
                if uploaded > highest {
                    moved[stream.uploadedKey] = String(highest)
                    said.append("\(stream) sent again after \(highest) (had reached \(uploaded))")
                }
                if let read = saved[stream.readKey].flatMap(FleetCursor.init(text:)), read.transaction >= standing.nextTransaction {
                    moved[stream.readKey] = FleetCursor.start.text
                    said.append("\(stream) read again from the start (the cursor names transaction \(read.transaction), the database is at \(standing.nextTransaction))")
                }
            }
            if !moved.isEmpty { try store.save(moved) }
            return said
        }
    }

    /// Verdicts given on this host after `sequence` to upload, at most `limit`.
    func pendingFeedback(after sequence: Int64, limit: Int) async throws -> [FleetFeedback] {
        try await onQueue { store in
            try store.loggedFeedback(after: sequence, limit: limit).map { row in
                FleetFeedback(localSequence: row.sequence, user: row.observation.user, address: row.observation.ip,
                              verdict: row.verdict == .legitimate ? .safe : .compromised, time: row.observation.time,
                              service: row.observation.service)
            }
        }
    }

    /// Verdicts given on other hosts, applied as if given here (a login said to be
    /// the user's joins the history; one said to be an intruder's leaves it), then
    /// the cursor after them saved. Applying one twice changes nothing, so a crash
    /// in between only applies it again. Returns how many were applied.
    func apply(_ verdicts: [FleetVerdict], next: FleetCursor, retention: Double) async throws -> Int {
        let hostName = self.hostName, detector = self.detector
        return try await onQueue { store in
            var applied = 0
            for shared in verdicts where shared.hostName != hostName {
                let feedback = shared.feedback
                _ = try store.apply(feedback.verdict == .safe ? .legitimate : .compromised, user: feedback.user,
                                    ip: feedback.address, service: feedback.service, detector: detector,
                                    retention: retention, now: feedback.time, origin: shared.hostName)
                applied += 1
            }
            try store.save([Stream.feedback.readKey: next.text])
            return applied
        }
    }

    /// Other hosts' rows from one catch-up page: stored (with the cursor after the
    /// page, in the same transaction), then told to the detector, which the
    /// pipeline and the API share behind its lock. Logins older than the retention
    /// window and failures older than the stuffing window are only read past.
    /// Returns how many were taken.
    func learn(_ stream: Stream, _ page: FleetLoginPage, retention: Double) async throws -> Int {
        if page.logins.isEmpty { return 0 }
        let hostName = self.hostName, detector = self.detector
        return try await onQueue { store in
            let oldest = Clock.wall - retention
            let shared = page.logins.filter { $0.hostName != hostName && $0.observation.time >= oldest }
            let rows = shared.map { login in
                SharedObservation(Observation(time: login.observation.time, user: login.observation.user,
                                              ip: login.observation.address, service: login.observation.service),
                                  origin: login.hostName, originSequence: login.observation.localSequence)
            }
            let positions = [stream.readKey: page.next.text]
            switch stream {
            case .feedback:
                preconditionFailure("verdicts come down through apply(_:next:retention:)")
            case .logins:
                let stored = try store.commitShared(rows, positions: positions).logins
                for o in stored { detector.confirm(user: o.user, service: o.service, ip: o.ip) }
                return stored.count
            case .failures:
                let stored = try store.commitShared([], failures: rows, positions: positions).failures
                for o in stored { detector.recordFailure(user: o.user, service: o.service, ip: o.ip, time: o.time) }
                return stored.count
            }
        }
    }
}

extension FleetCursor {
    /// `transaction:id`, as the store keeps it.
    var text: String { "\(transaction):\(id)" }

    init?(text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let transaction = UInt64(parts[0]), let id = Int64(parts[1]) else { return nil }
        self.init(transaction: transaction, id: id)
    }
}
