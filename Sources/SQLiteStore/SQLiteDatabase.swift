import CSQLite

/// A failed SQLite call, with the statement or operation and SQLite's message.
public struct SQLiteError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { "\(path): \(message)" }
}

/// SQLITE_TRANSIENT: SQLite copies bound text before the call returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection, used by one thread at a time (the C API directly:
/// a handful of statements do not warrant an ORM). Opened in WAL mode with
/// `synchronous = FULL`: the agent's state and the alert spool must survive power loss.
public final class SQLiteDatabase {
    public let path: String
    private var handle: OpaquePointer?

    public init(path: String) throws(SQLiteError) {
        self.path = path
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        if rc != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            handle = nil
            throw SQLiteError(path: path, message: message)
        }
        // A writer and the retrainer's reader work side by side; wait rather than fail on a lock.
        sqlite3_busy_timeout(handle, 5000)
        try execute("PRAGMA journal_mode = WAL")
        // FULL: a committed batch (observations and cursors together) survives power loss.
        try execute("PRAGMA synchronous = FULL")
    }

    deinit { close() }

    /// Closes the connection; later calls fail.
    public func close() {
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    public func execute(_ sql: String) throws(SQLiteError) {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "error"
            sqlite3_free(error)
            throw SQLiteError(path: path, message: "\(message) (in: \(sql.prefix(60)))")
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var statement: OpaquePointer?
        if sqlite3_prepare_v2(handle, sql, -1, &statement, nil) != SQLITE_OK {
            throw SQLiteError(path: path, message: "\(String(cString: sqlite3_errmsg(handle))) (in: \(sql.prefix(60)))")
        }
        return SQLiteStatement(statement!, database: self)
    }

    /// Runs `body` in one transaction: all of it is committed, or none.
    public func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try transaction(mapError: { $0 }, body)
    }

    /// The same, for callers with an error type of their own: `mapError` turns
    /// a failed BEGIN or COMMIT into it.
    public func transaction<T, E: Error>(mapError: (SQLiteError) -> E, _ body: () throws(E) -> T) throws(E) -> T {
        do { try execute("BEGIN IMMEDIATE") } catch { throw mapError(error) }
        let result: T
        do { result = try body() } catch {
            try? execute("ROLLBACK")
            throw error
        }
        do { try execute("COMMIT") } catch {
            try? execute("ROLLBACK")
            throw mapError(error)
        }
        return result
    }

    /// How long a statement waits for another connection's lock before failing.
    public func setBusyTimeout(milliseconds: Int32) { sqlite3_busy_timeout(handle, milliseconds) }

    var lastError: String { handle.map { String(cString: sqlite3_errmsg($0)) } ?? "the database is closed" }

    /// Rows changed by the last statement.
    public var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// A column value, for `query`.
    public enum Value: Sendable, Equatable {
        case integer(Int64)
        case real(Double)
        case text(String)
        case null

        public var integer: Int64 { if case .integer(let v) = self { return v }; if case .real(let v) = self { return Int64(v) }; return 0 }
        public var real: Double? { if case .real(let v) = self { return v }; if case .integer(let v) = self { return Double(v) }; return nil }
        public var text: String { if case .text(let v) = self { return v }; return "" }
    }

    /// Runs one statement with `values` bound in order and returns every row.
    @discardableResult
    public func query(_ sql: String, _ values: [Value] = []) throws(SQLiteError) -> [[Value]] {
        let statement = try prepare(sql)
        for (i, value) in values.enumerated() { statement.bind(Int32(i + 1), value) }
        var rows: [[Value]] = []
        while try statement.step() { rows.append(statement.row()) }
        return rows
    }
}

/// A prepared statement; bind by 1-based index, step, read columns by 0-based index.
public final class SQLiteStatement {
    private let statement: OpaquePointer
    private unowned let database: SQLiteDatabase

    fileprivate init(_ statement: OpaquePointer, database: SQLiteDatabase) {
        self.statement = statement
        self.database = database
    }

    deinit { sqlite3_finalize(statement) }

    public func bind(_ index: Int32, _ value: Double) { sqlite3_bind_double(statement, index, value) }
    public func bind(_ index: Int32, _ value: Int64) { sqlite3_bind_int64(statement, index, value) }
    public func bind(_ index: Int32, _ value: String) { sqlite3_bind_text(statement, index, value, -1, transient) }
    public func bind(_ index: Int32, _ value: SQLiteDatabase.Value) {
        switch value {
        case .integer(let v): bind(index, v)
        case .real(let v): bind(index, v)
        case .text(let v): bind(index, v)
        case .null: sqlite3_bind_null(statement, index)
        }
    }

    /// True while there is a row to read.
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(statement)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw SQLiteError(path: database.path, message: database.lastError)
    }

    public func reset() {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
    }

    public func double(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
    public func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

    /// The current row, every column with its own type.
    public func row() -> [SQLiteDatabase.Value] {
        (0..<sqlite3_column_count(statement)).map { column in
            switch sqlite3_column_type(statement, column) {
            case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
            case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, column))
            case SQLITE_NULL: return .null
            default: return .text(text(column))
            }
        }
    }

    public func text(_ column: Int32) -> String {
        guard let p = sqlite3_column_text(statement, column) else { return "" }
        return String(cString: p)
    }

    /// Steps a statement that returns no rows, then makes it ready for reuse.
    public func run() throws(SQLiteError) {
        defer { reset() }
        _ = try step()
    }
}
