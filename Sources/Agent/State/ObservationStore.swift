import IPSightCore
import LogSources
import SQLiteStore
/// The agent's memory in SQLite (WAL): successful logins within the retention
/// window, and where each source was read up to. In a fleet it also holds the
/// logins other hosts shared (`origin` names the host; NULL is this host's own).
///
/// Observations and source positions are written in one transaction, so after a
/// crash or restart the positions match exactly the observations kept: nothing
/// is lost and nothing is counted twice.
public final class ObservationStore: @unchecked Sendable {
    public let path: String
    /// Also used by the store's extensions in this module (feedback).
    let db: SQLiteDatabase
    private let insert: SQLiteStatement
    private let insertFailure: SQLiteStatement
    private let putState: SQLiteStatement

    public init(path: String) throws(SQLiteError) {
        self.path = path
        let db = try SQLiteDatabase(path: path)
        self.db = db
        try db.execute("""
            CREATE TABLE IF NOT EXISTS observations (
                time REAL NOT NULL, user TEXT NOT NULL, ip TEXT NOT NULL, service TEXT NOT NULL,
                learned INTEGER NOT NULL DEFAULT 1, origin TEXT);
            CREATE INDEX IF NOT EXISTS observations_time ON observations(time);
            CREATE TABLE IF NOT EXISTS source_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS model_entities (hash INTEGER PRIMARY KEY);
            CREATE TABLE IF NOT EXISTS failures (
                time REAL NOT NULL, user TEXT NOT NULL, ip TEXT NOT NULL, service TEXT NOT NULL, origin TEXT);
            CREATE INDEX IF NOT EXISTS failures_time ON failures(time);
            CREATE TABLE IF NOT EXISTS feedback (
                time REAL NOT NULL, user TEXT NOT NULL, ip TEXT NOT NULL, service TEXT NOT NULL, verdict TEXT NOT NULL);
            """)
        func columns(_ table: String) throws(SQLiteError) -> Set<String> {
            let query = try db.prepare("SELECT name FROM pragma_table_info('\(table)')")
            var names: Set<String> = []
            while try query.step() { names.insert(query.text(0)) }
            return names
        }
        // Databases from before `learned` existed: every login in them was learnt.
        let names = try columns("observations")
        if !names.contains("learned") {
            try db.execute("ALTER TABLE observations ADD COLUMN learned INTEGER NOT NULL DEFAULT 1")
        }
        // Databases from before fleet mode: every login in them is this host's own.
        if !names.contains("origin") {
            try db.execute("ALTER TABLE observations ADD COLUMN origin TEXT")
        }
        // A shared row is known by its host and that host's number for it: read
        // again (after the fleet database was restored from a backup, or a host
        // uploaded it again), it is not stored twice.
        for table in ["observations", "failures"] {
            if try !columns(table).contains("origin_sequence") {
                try db.execute("ALTER TABLE \(table) ADD COLUMN origin_sequence INTEGER")
            }
            try db.execute("CREATE UNIQUE INDEX IF NOT EXISTS \(table)_shared ON \(table)(origin, origin_sequence) WHERE origin IS NOT NULL")
        }
        insert = try db.prepare("INSERT OR IGNORE INTO observations (time, user, ip, service, learned, origin, origin_sequence) VALUES (?, ?, ?, ?, ?, ?, ?)")
        insertFailure = try db.prepare("INSERT OR IGNORE INTO failures (time, user, ip, service, origin, origin_sequence) VALUES (?, ?, ?, ?, ?, ?)")
        putState = try db.prepare("INSERT OR REPLACE INTO source_state (key, value) VALUES (?, ?)")
    }

    /// How long failed logins are kept at least (the stuffing window may be longer).
    public static let failureRetention = 86_400.0

    /// Stores a batch's observations (and failed logins, in a fleet) and the
    /// positions after it, atomically.
    public func commit(_ observations: [Observation], failures: [Observation] = [],
                       positions: [String: String]) throws(SQLiteError) {
        try commitShared(observations.map { SharedObservation($0) }, failures: failures.map { SharedObservation($0) },
                         positions: positions)
    }

    /// Stores observations, each with the fleet host it came from (nil: this
    /// host's own), and positions, atomically: a fleet agent's catch-up keeps the
    /// other hosts' logins and its read cursor together, so a restart neither
    /// loses nor repeats any.
    /// Returns the shared rows stored (one already held is skipped); this host's own
    /// rows, the pipeline's every batch, are not collected.
    @discardableResult
    public func commitShared(_ observations: [SharedObservation], failures: [SharedObservation] = [],
                             positions: [String: String]) throws(SQLiteError) -> (logins: [Observation], failures: [Observation]) {
        try db.transaction { () throws(SQLiteError) in
            var stored: (logins: [Observation], failures: [Observation]) = ([], [])
            for row in observations {
                let o = row.observation
                insert.bind(1, o.time)
                insert.bind(2, o.user)
                insert.bind(3, o.ip)
                insert.bind(4, o.service)
                insert.bind(5, Int64(o.learned ? 1 : 0))
                insert.bind(6, row.origin.map(SQLiteDatabase.Value.text) ?? .null)
                insert.bind(7, row.originSequence.map(SQLiteDatabase.Value.integer) ?? .null)
                try insert.run()
                if row.origin != nil && db.changes > 0 { stored.logins.append(o) }
            }
            for row in failures {
                let o = row.observation
                insertFailure.bind(1, o.time)
                insertFailure.bind(2, o.user)
                insertFailure.bind(3, o.ip)
                insertFailure.bind(4, o.service)
                insertFailure.bind(5, row.origin.map(SQLiteDatabase.Value.text) ?? .null)
                insertFailure.bind(6, row.originSequence.map(SQLiteDatabase.Value.integer) ?? .null)
                try insertFailure.run()
                if row.origin != nil && db.changes > 0 { stored.failures.append(o) }
            }
            for (key, value) in positions {
                putState.bind(1, key)
                putState.bind(2, value)
                try putState.run()
            }
            return stored
        }
    }

    /// How long a write waits for a lock another connection holds (default 5 s).
    public func setBusyTimeout(milliseconds: Int32) throws(SQLiteError) { db.setBusyTimeout(milliseconds: milliseconds) }

    /// Where each source was read up to, by source key.
    public func positions() throws(SQLiteError) -> [String: String] {
        let query = try db.prepare("SELECT key, value FROM source_state")
        var result: [String: String] = [:]
        while try query.step() { result[query.text(0)] = query.text(1) }
        return result
    }

    /// Observations at or after `since`, oldest first; with `learnedOnly`, those
    /// the agent learns from (history, training, calibration).
    public func observations(since: Double = -.infinity, learnedOnly: Bool = false) throws(SQLiteError) -> [Observation] {
        let query = try db.prepare("SELECT time, user, ip, service, learned FROM observations WHERE time >= ?"
            + (learnedOnly ? " AND learned = 1" : "") + " ORDER BY time, rowid")
        query.bind(1, since.isFinite ? since : -1e300)
        var result: [Observation] = []
        while try query.step() {
            result.append(Observation(time: query.double(0), user: query.text(1), ip: query.text(2), service: query.text(3),
                                      learned: query.int(4) != 0))
        }
        return result
    }

    /// This host's own learnt logins after row `sequence`, oldest first, at most
    /// `limit`, with their row ids: what a fleet agent shares. Logins from other
    /// hosts are not shared back, and those the risk alerted on are not shared
    /// at all (an intruder's address must not become known on every host).
    public func ownLearnedLogins(after sequence: Int64, limit: Int) throws(SQLiteError) -> [(sequence: Int64, observation: Observation)] {
        try rows(of: "observations", where: Self.ownLearned, after: sequence, limit: limit).map { ($0.sequence, $0.observation) }
    }

    /// How many of `ownLearnedLogins` lie after row `sequence` (a fleet agent's upload backlog).
    public func ownLearnedCount(after sequence: Int64) throws(SQLiteError) -> Int {
        try count(of: "observations", where: Self.ownLearned, after: sequence)
    }

    /// This host's own failed logins after row `sequence`, oldest first, at most `limit`.
    public func ownFailures(after sequence: Int64, limit: Int) throws(SQLiteError) -> [(sequence: Int64, observation: Observation)] {
        try rows(of: "failures", where: "origin IS NULL", after: sequence, limit: limit).map { ($0.sequence, $0.observation) }
    }

    /// How many of `ownFailures` lie after row `sequence`.
    public func ownFailureCount(after sequence: Int64) throws(SQLiteError) -> Int {
        try count(of: "failures", where: "origin IS NULL", after: sequence)
    }

    private static let ownLearned = "origin IS NULL AND learned = 1"

    /// Rows of `table` (time, user, ip, service and `extra`) after row `sequence` that
    /// meet `condition`, oldest first, at most `limit`: what a fleet agent uploads.
    func rows(of table: String, where condition: String, extra: String = "''", after sequence: Int64, limit: Int)
            throws(SQLiteError) -> [(sequence: Int64, observation: Observation, extra: String)] {
        let query = try db.prepare("SELECT rowid, time, user, ip, service, \(extra) FROM \(table)"
            + " WHERE rowid > ? AND \(condition) ORDER BY rowid LIMIT ?")
        query.bind(1, sequence)
        query.bind(2, Int64(limit))
        var result: [(sequence: Int64, observation: Observation, extra: String)] = []
        while try query.step() {
            result.append((query.int(0), Observation(time: query.double(1), user: query.text(2), ip: query.text(3), service: query.text(4)),
                           query.text(5)))
        }
        return result
    }

    /// How many rows of `table` after row `sequence` meet `condition`.
    func count(of table: String, where condition: String, after sequence: Int64) throws(SQLiteError) -> Int {
        let query = try db.prepare("SELECT count(*) FROM \(table) WHERE rowid > ? AND \(condition)")
        query.bind(1, sequence)
        _ = try query.step()
        return Int(query.int(0))
    }

    /// Failed logins (this host's and the fleet's) since `since`, oldest first.
    public func failures(since: Double) throws(SQLiteError) -> [Observation] {
        let query = try db.prepare("SELECT time, user, ip, service FROM failures WHERE time >= ? ORDER BY rowid")
        query.bind(1, since)
        var result: [Observation] = []
        while try query.step() {
            result.append(Observation(time: query.double(0), user: query.text(1), ip: query.text(2), service: query.text(3)))
        }
        return result
    }

    /// Forgets failed logins older than `before`, the newest row kept (as `prune`).
    @discardableResult
    public func pruneFailures(before: Double) throws(SQLiteError) -> Int {
        try deleteOlder(from: "failures", before: before)
    }

    public func count() throws(SQLiteError) -> Int {
        let query = try db.prepare("SELECT count(*) FROM observations")
        _ = try query.step()
        return Int(query.int(0))
    }

    /// Logins of `user` from `ip` in the history (learnt).
    public func learnedCount(user: String, ip: String) throws(SQLiteError) -> Int {
        let query = try db.prepare("SELECT count(*) FROM observations WHERE user = ? AND ip = ? AND learned = 1")
        query.bind(1, user)
        query.bind(2, ip)
        _ = try query.step()
        return Int(query.int(0))
    }

    /// Feedback: logins of `user` from `ip` that were alerted on were the user's
    /// own; they join the history (the agent learns them on reload or restart).
    /// Returns how many logins changed.
    @discardableResult
    public func markLearned(user: String, ip: String) throws(SQLiteError) -> Int {
        try setLearned(true, user: user, ip: ip)
    }

    /// Feedback: logins of `user` from `ip` were not the user's (a compromised
    /// account); they leave the history, so the address is unusual again.
    /// Returns how many logins changed.
    @discardableResult
    public func markUnlearned(user: String, ip: String) throws(SQLiteError) -> Int {
        try setLearned(false, user: user, ip: ip)
    }

    private func setLearned(_ learned: Bool, user: String, ip: String) throws(SQLiteError) -> Int {
        let update = try db.prepare("UPDATE observations SET learned = ? WHERE user = ? AND ip = ? AND learned = ?")
        update.bind(1, Int64(learned ? 1 : 0))
        update.bind(2, user)
        update.bind(3, ip)
        update.bind(4, Int64(learned ? 0 : 1))
        try update.run()
        return db.changes
    }

    /// Records the entities the installed model was trained on (their stable hashes).
    public func replaceModelEntities(_ hashes: Set<UInt64>) throws(SQLiteError) {
        let insert = try db.prepare("INSERT OR IGNORE INTO model_entities (hash) VALUES (?)")
        try db.transaction { () throws(SQLiteError) in
            try db.execute("DELETE FROM model_entities")
            for h in hashes {
                insert.bind(1, Int64(bitPattern: h))
                try insert.run()
            }
        }
    }

    /// The entities the installed model was trained on; empty when not recorded.
    public func modelEntities() throws(SQLiteError) -> Set<UInt64> {
        let query = try db.prepare("SELECT hash FROM model_entities")
        var result: Set<UInt64> = []
        while try query.step() { result.insert(UInt64(bitPattern: query.int(0))) }
        return result
    }

    /// Forgets observations older than `before` (the retention window); returns how many.
    /// The newest row always stays: SQLite gives a new row the highest row id plus
    /// one, so deleting the highest would hand its id out again, and a fleet agent's
    /// upload position (a row id) would then skip the new login.
    @discardableResult
    public func prune(before: Double) throws(SQLiteError) -> Int {
        try deleteOlder(from: "observations", before: before)
    }

    private func deleteOlder(from table: String, before: Double) throws(SQLiteError) -> Int {
        let delete = try db.prepare("DELETE FROM \(table) WHERE time < ? AND rowid < (SELECT max(rowid) FROM \(table))")
        delete.bind(1, before)
        try delete.run()
        return db.changes
    }
}

/// The agent's source positions live beside its logins: a batch's positions are
/// normally committed with its observations; alone, they are saved like this.
extension ObservationStore: PositionStore {
    public func save(_ positions: [String: String]) throws {
        try commit([], positions: positions)
    }
}

/// A row for the store with where it came from: nil for this host's own; else the
/// fleet host and that host's number for it (nil when it has none).
public struct SharedObservation: Sendable {
    public var observation: Observation
    public var origin: String?
    public var originSequence: Int64?

    public init(_ observation: Observation, origin: String? = nil, originSequence: Int64? = nil) {
        self.observation = observation
        self.origin = origin
        self.originSequence = originSequence
    }
}
