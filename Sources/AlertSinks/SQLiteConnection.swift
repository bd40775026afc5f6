import CSQLite

/// The few SQLite calls the spool needs: open, execute with bound values, read rows.
/// Not thread-safe by itself; the spool serialises access under its lock.
// Unchecked: the spool only touches it inside its Mutex.
final class SQLiteConnection: @unchecked Sendable {
    enum Value {
        case integer(Int64)
        case real(Double)
        case text(String)
        case null

        var integer: Int64 { if case .integer(let v) = self { return v }; if case .real(let v) = self { return Int64(v) }; return 0 }
        var real: Double? { if case .real(let v) = self { return v }; if case .integer(let v) = self { return Double(v) }; return nil }
        var text: String { if case .text(let v) = self { return v }; return "" }
    }

    let path: String
    private var db: OpaquePointer?

    init(path: String) throws(SpoolError) {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            db = nil
            throw SpoolError(path: path, operation: "open", message: message)
        }
        // The agent's other state may share this file: wait for its writer instead of failing.
        sqlite3_busy_timeout(db, 5000)
    }

    deinit { close() }

    func close() {
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    func execute(_ sql: String, _ values: [Value] = []) throws(SpoolError) {
        _ = try query(sql, values)
    }

    /// Runs one statement and returns all rows it produces.
    func query(_ sql: String, _ values: [Value] = []) throws(SpoolError) -> [[Value]] {
        guard let db else { throw SpoolError(path: path, operation: sql, message: "the spool is closed") }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw error(sql)
        }
        defer { sqlite3_finalize(statement) }
        // SQLITE_TRANSIENT: SQLite copies the bytes, so Swift strings may go away after binding.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .integer(let v): sqlite3_bind_int64(statement, index, v)
            case .real(let v): sqlite3_bind_double(statement, index, v)
            case .text(let v): sqlite3_bind_text(statement, index, v, -1, transient)
            case .null: sqlite3_bind_null(statement, index)
            }
        }
        var rows: [[Value]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(sql) }
            var row: [Value] = []
            for column in 0..<sqlite3_column_count(statement) {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_NULL: row.append(.null)
                default: row.append(.text(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""))
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Runs `body` in an immediate transaction, rolled back if it throws.
    func transaction<T>(_ body: () throws(SpoolError) -> T) throws(SpoolError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    var changes: Int { db.map { Int(sqlite3_changes($0)) } ?? 0 }

    private func error(_ sql: String) -> SpoolError {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed"
        let statement = sql.split(separator: " ").prefix(3).joined(separator: " ")
        return SpoolError(path: path, operation: statement, message: message)
    }
}

public struct SpoolError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var message: String
    public var description: String { "alert spool \(path): \(operation): \(message)" }
}
