import IPSightCore
import Synchronization

/// The durable queue: one SQLite row per (alert, sink), written before `submit`
/// returns and deleted once that sink has the alert. WAL with `synchronous=FULL`, so a
/// committed row survives power loss, not only a crash.
final class Spool: Sendable {
    struct Row {
        var seq: Int64
        var sink: String
        var alert: Alert
        var attempts: Int
    }

    /// What to write for one sink in `enqueue`.
    enum Placement {
        /// Deliverable now.
        case now
        /// Over the sink's rate limit: folded into one held row per user and address,
        /// released at `until` with the count of alerts it stands for.
        case fold(until: Double)
    }

    struct EnqueueResult: Equatable {
        var inserted = 0
        var folded = 0
        var overflowed = 0
    }

    let path: String
    let capacity: Int
    private let state: Mutex<SQLiteConnection?>
    private let rowCount = Atomic<Int>(0)

    init(path: String, capacity: Int) throws(SpoolError) {
        self.path = path
        self.capacity = max(1, capacity)
        let connection = try SQLiteConnection(path: path)
        // WAL can be refused (some network file systems): fail loudly rather than run without it.
        let mode = try connection.query("PRAGMA journal_mode=WAL").first?.first?.text ?? ""
        guard mode.lowercased() == "wal" else {
            throw SpoolError(path: path, operation: "PRAGMA journal_mode=WAL", message: "SQLite kept journal mode \"\(mode)\"")
        }
        try connection.execute("PRAGMA synchronous=FULL")
        // In an alert storm a batch writes thousands of rows: a larger page cache keeps
        // the indexes' pages in memory instead of reading them back for every insert.
        try connection.execute("PRAGMA cache_size=-32768")
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS alert_spool(
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                sink TEXT NOT NULL,
                alert_id TEXT NOT NULL,
                fold_key TEXT NOT NULL,
                held INTEGER NOT NULL DEFAULT 0,
                repeats INTEGER NOT NULL DEFAULT 1,
                alert TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL,
                queued_at REAL NOT NULL,
                last_error TEXT,
                UNIQUE(sink, alert_id))
            """)
        // Due rows are read per sink, longest due first.
        try connection.execute("CREATE INDEX IF NOT EXISTS alert_spool_sink_due ON alert_spool(sink, next_at)")
        // The index older spools had: every insert paid for it, no query uses it now.
        try connection.execute("DROP INDEX IF EXISTS alert_spool_due")
        try connection.execute("CREATE INDEX IF NOT EXISTS alert_spool_fold ON alert_spool(sink, fold_key) WHERE held = 1")
        let count = try connection.query("SELECT count(*) FROM alert_spool").first?.first?.integer ?? 0
        rowCount.store(Int(count), ordering: .relaxed)
        state = Mutex(connection)
    }

    /// Rows queued, for every sink (including sinks no longer configured).
    var count: Int { rowCount.load(ordering: .relaxed) }

    func close() {
        state.withLock { connection in
            connection?.close()
            connection = nil
        }
    }

    private func withConnection<T>(_ body: (SQLiteConnection) throws(SpoolError) -> T) throws(SpoolError) -> T {
        let result: Result<T, SpoolError> = state.withLock { connection in
            guard let connection else { return .failure(SpoolError(path: path, operation: "use", message: "the spool is closed")) }
            do throws(SpoolError) { return .success(try body(connection)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// One alert and where it goes, for `enqueue`.
    struct Submission {
        var alert: Alert
        var placements: [(sink: String, placement: Placement)]
    }

    /// Queues `alert` for each sink in one transaction; drops the oldest rows past capacity.
    func enqueue(_ alert: Alert, placements: [(sink: String, placement: Placement)], now: Double) throws(SpoolError) -> EnqueueResult {
        try enqueue([Submission(alert: alert, placements: placements)], now: now)
    }

    /// Queues a batch of alerts in one transaction (one sync to disk for all of them):
    /// when it returns every row is durable, and when it throws none was written.
    func enqueue(_ batch: [Submission], now: Double) throws(SpoolError) -> EnqueueResult {
        guard !batch.isEmpty else { return EnqueueResult() }
        let insertSQL = """
            INSERT OR IGNORE INTO alert_spool(sink, alert_id, fold_key, held, alert, next_at, queued_at)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """
        let foldSQL = "UPDATE alert_spool SET repeats = repeats + 1 WHERE sink = ? AND fold_key = ? AND held = 1"
        return try withConnection { db throws(SpoolError) in
            let result = try db.transaction { () throws(SpoolError) -> EnqueueResult in
                let insert = try db.prepare(insertSQL)
                let fold = try db.prepare(foldSQL)
                var result = EnqueueResult()
                for submission in batch {
                    let alert = submission.alert
                    let json = String(decoding: AlertJSON.bytes(alert), as: UTF8.self)
                    let foldKey = "\(alert.user)\u{1F}\(alert.ip)"
                    for (sink, placement) in submission.placements {
                        switch placement {
                        case .now:
                            // OR IGNORE: the same alert read again (after a restart) is queued once.
                            insert.bind(1, sink); insert.bind(2, alert.id); insert.bind(3, foldKey); insert.bind(4, Int64(0))
                            insert.bind(5, json); insert.bind(6, now); insert.bind(7, now)
                            try db.run(insert, insertSQL)
                            result.inserted += db.changes
                        case .fold(let until):
                            fold.bind(1, sink); fold.bind(2, foldKey)
                            try db.run(fold, foldSQL)
                            if db.changes == 0 {
                                insert.bind(1, sink); insert.bind(2, alert.id); insert.bind(3, foldKey); insert.bind(4, Int64(1))
                                insert.bind(5, json); insert.bind(6, until); insert.bind(7, now)
                                try db.run(insert, insertSQL)
                                result.inserted += db.changes
                            } else {
                                result.folded += 1
                            }
                        }
                    }
                }
                let total = rowCount.load(ordering: .relaxed) + result.inserted
                if total > capacity {
                    try db.execute("DELETE FROM alert_spool WHERE seq IN (SELECT seq FROM alert_spool ORDER BY seq LIMIT ?)",
                                   [.integer(Int64(total - capacity))])
                    result.overflowed = db.changes
                }
                return result
            }
            rowCount.add(result.inserted - result.overflowed, ordering: .relaxed)
            return result
        }
    }

    /// Rows of `sinks` due at `now` (all of them when `now` is infinity), longest due
    /// first, leaving out `excluding` (rows already being delivered).
    /// A row that cannot be read would never deliver: it is removed and reported to `unreadable`.
    func due(now: Double, sinks: [String], limit: Int, excluding: Set<Int64> = [],
             unreadable: (SpoolError) -> Void) throws(SpoolError) -> [Row] {
        guard !sinks.isEmpty, limit > 0 else { return [] }
        let marks = Array(repeating: "?", count: sinks.count).joined(separator: ",")
        let skip = excluding.isEmpty ? "" : " AND seq NOT IN (\(Array(repeating: "?", count: excluding.count).joined(separator: ",")))"
        let rows = try withConnection { db throws(SpoolError) in
            let rows = try db.query("""
                SELECT seq, sink, alert, attempts, repeats, held FROM alert_spool
                WHERE sink IN (\(marks)) AND next_at <= ?\(skip) ORDER BY next_at, seq LIMIT ?
                """, sinks.map { .text($0) } + [.real(now.isFinite ? now : Double.greatestFiniteMagnitude)]
                    + excluding.map { .integer($0) } + [.integer(Int64(limit))])
            // A fold row leaving for delivery is closed: alerts folded from now on must
            // open a new row, or their count would be deleted with this one.
            for row in rows where row[5].integer == 1 {
                try db.execute("UPDATE alert_spool SET held = 0 WHERE seq = ?", [.integer(row[0].integer)])
            }
            return rows
        }
        var result: [Row] = []
        for row in rows {
            let seq = row[0].integer
            do {
                var alert = try AlertJSON.decode(try JSONValue.parse(row[2].text))
                alert.count = max(alert.count, Int(row[4].integer))
                result.append(Row(seq: seq, sink: row[1].text, alert: alert, attempts: Int(row[3].integer)))
            } catch {
                try delete(seq)
                unreadable(SpoolError(path: path, operation: "read row \(seq)", message: "\(error); row removed"))
            }
        }
        return result
    }

    /// What became of one delivery attempt, for `complete`.
    enum Completion {
        /// Accepted by the sink, or given up on: the row goes.
        case remove(Int64)
        /// A failed attempt: tried again at `nextAt`.
        case retry(Int64, attempts: Int, nextAt: Double, error: String)
    }

    /// Records attempts in one transaction (deliveries finish in bursts in a storm; one
    /// sync for all of them). `committed` runs under the spool's lock once they are on
    /// disk, so counters move together with `pending`.
    func complete(_ completions: [Completion], committed: () -> Void) throws(SpoolError) {
        guard !completions.isEmpty else { return }
        let deleteSQL = "DELETE FROM alert_spool WHERE seq = ?"
        let retrySQL = "UPDATE alert_spool SET attempts = ?, next_at = ?, last_error = ?, held = 0 WHERE seq = ?"
        try withConnection { db throws(SpoolError) in
            let removed = try db.transaction { () throws(SpoolError) -> Int in
                let delete = try db.prepare(deleteSQL)
                let retry = try db.prepare(retrySQL)
                var removed = 0
                for completion in completions {
                    switch completion {
                    case .remove(let seq):
                        delete.bind(1, seq)
                        try db.run(delete, deleteSQL)
                        removed += db.changes
                    case .retry(let seq, let attempts, let nextAt, let error):
                        // held = 0: later alerts of the same burst open a new fold row.
                        retry.bind(1, Int64(attempts)); retry.bind(2, nextAt); retry.bind(3, String(error.prefix(500))); retry.bind(4, seq)
                        try db.run(retry, retrySQL)
                    }
                }
                return removed
            }
            // Under the lock, so `enqueue`'s capacity check never sees a stale count.
            rowCount.subtract(removed, ordering: .relaxed)
            committed()
        }
    }

    /// Earliest `next_at` among `sinks`' rows, leaving out `excluding`.
    func nextDue(sinks: [String], excluding: Set<Int64> = []) throws(SpoolError) -> Double? {
        guard !sinks.isEmpty else { return nil }
        let marks = Array(repeating: "?", count: sinks.count).joined(separator: ",")
        let skip = excluding.isEmpty ? "" : " AND seq NOT IN (\(Array(repeating: "?", count: excluding.count).joined(separator: ",")))"
        return try withConnection { db throws(SpoolError) in
            try db.query("SELECT min(next_at) FROM alert_spool WHERE sink IN (\(marks))\(skip)",
                         sinks.map { .text($0) } + excluding.map { .integer($0) })
        }.first?.first?.real
    }

    func pending(sinks: [String]) throws(SpoolError) -> Int {
        guard !sinks.isEmpty else { return 0 }
        let marks = Array(repeating: "?", count: sinks.count).joined(separator: ",")
        return Int(try withConnection { db throws(SpoolError) in
            try db.query("SELECT count(*) FROM alert_spool WHERE sink IN (\(marks))", sinks.map { .text($0) })
        }.first?.first?.integer ?? 0)
    }

    func delete(_ seq: Int64) throws(SpoolError) {
        try withConnection { db throws(SpoolError) in
            try db.execute("DELETE FROM alert_spool WHERE seq = ?", [.integer(seq)])
            // Under the lock, so `enqueue`'s capacity check never sees a stale count.
            rowCount.subtract(db.changes, ordering: .relaxed)
        }
    }
}
