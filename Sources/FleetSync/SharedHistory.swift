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
/// The positions live in the store's `source_state` beside the source positions:
/// `fleet:uploaded`, the highest own row the database acknowledged, and
/// `fleet:read`, the (transaction, id) cursor of the fleet's logins caught up to.
final class SharedHistory: @unchecked Sendable {
    static let uploadedKey = "fleet:uploaded"
    static let readKey = "fleet:read"

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

    /// Where the upload and the catch-up stand.
    func positions() async throws -> (uploaded: Int64, read: FleetCursor) {
        try await onQueue { store in
            let saved = try store.positions()
            return (saved[Self.uploadedKey].flatMap { Int64($0) } ?? 0,
                    saved[Self.readKey].flatMap(FleetCursor.init(text:)) ?? .start)
        }
    }

    /// This host's logins after `sequence` to upload, at most `limit`.
    func pendingUploads(after sequence: Int64, limit: Int) async throws -> [FleetObservation] {
        try await onQueue { store in
            try store.ownLearnedLogins(after: sequence, limit: limit).map { row in
                FleetObservation(localSequence: row.sequence, user: row.observation.user, address: row.observation.ip,
                                 service: row.observation.service, time: row.observation.time)
            }
        }
    }

    /// Saved only after the database committed the upload: a crash in between sends
    /// the rows again, which their idempotency keys make harmless.
    func saveUploaded(_ sequence: Int64) async throws {
        try await onQueue { try $0.save([Self.uploadedKey: String(sequence)]) }
    }

    func backlog(after sequence: Int64) async throws -> Int {
        try await onQueue { try $0.ownLearnedCount(after: sequence) }
    }

    /// Other hosts' logins from one catch-up page: stored as learnt, with the
    /// cursor after the page in the same transaction, then told to the detector
    /// (which the pipeline and the API's feedback share behind its lock). Logins
    /// older than the retention window are only read past. Returns how many were learnt.
    func learn(_ page: FleetLoginPage, retention: Double) async throws -> Int {
        if page.logins.isEmpty { return 0 }
        let hostName = self.hostName, detector = self.detector
        return try await onQueue { store in
            let oldest = Clock.wall - retention
            let shared = page.logins.filter { $0.hostName != hostName && $0.observation.time >= oldest }
            let rows = shared.map { login in
                (observation: Observation(time: login.observation.time, user: login.observation.user, ip: login.observation.address,
                                          service: login.observation.service),
                 origin: Optional(login.hostName))
            }
            try store.commitShared(rows, positions: [Self.readKey: page.next.text])
            for row in rows {
                detector.confirm(user: row.observation.user, service: row.observation.service, ip: row.observation.ip)
            }
            return rows.count
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
