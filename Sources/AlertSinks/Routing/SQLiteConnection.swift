import SQLiteStore

/// The spool's view of its database: `SQLiteStore`'s connection with errors that
/// say they come from the alert spool. Not thread-safe by itself; the spool
/// serialises access under its lock.
// Unchecked: the spool only touches it inside its Mutex.
final class SQLiteConnection: @unchecked Sendable {
    typealias Value = SQLiteDatabase.Value
    let path: String
    private let database: SQLiteDatabase

    init(path: String) throws(SpoolError) {
        self.path = path
        do { database = try SQLiteDatabase(path: path) } catch {
            throw SpoolError(path: path, operation: "open", message: error.message)
        }
    }

    func close() { database.close() }

    func execute(_ sql: String, _ values: [Value] = []) throws(SpoolError) {
        _ = try query(sql, values)
    }

    /// Runs one statement and returns all rows it produces.
    func query(_ sql: String, _ values: [Value] = []) throws(SpoolError) -> [[Value]] {
        do { return try database.query(sql, values) } catch { throw spoolError(sql, error) }
    }

    /// A statement to run many times (bind, `run`, and it resets itself).
    func prepare(_ sql: String) throws(SpoolError) -> SQLiteStatement {
        do { return try database.prepare(sql) } catch { throw spoolError(sql, error) }
    }

    /// Runs a prepared statement that returns no rows; `sql` names it in errors.
    func run(_ statement: SQLiteStatement, _ sql: String) throws(SpoolError) {
        do { try statement.run() } catch { throw spoolError(sql, error) }
    }

    /// Runs `body` in an immediate transaction, rolled back if it throws.
    func transaction<T>(_ body: () throws(SpoolError) -> T) throws(SpoolError) -> T {
        try database.transaction(mapError: { spoolError("transaction", $0) }, body)
    }

    var changes: Int { database.changes }

    private func spoolError(_ sql: String, _ error: SQLiteError) -> SpoolError {
        SpoolError(path: path, operation: sql.split(separator: " ").prefix(3).joined(separator: " "), message: error.message)
    }
}

public struct SpoolError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var message: String
    public var description: String { "alert spool \(path): \(operation): \(message)" }
}
