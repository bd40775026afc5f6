import IPSightCore
import Synchronization

/// Where each source was read up to, by `SourceKey`, kept so that a command run
/// again, or an agent restarted, continues after the last record it processed.
/// The agent keeps them in its SQLite store (with the batch's logins, in one
/// transaction); `ipsight parse --state` in a `PositionFile`.
public protocol PositionStore: AnyObject, Sendable {
    /// Position texts by source key.
    func positions() throws -> [String: String]
    /// Records these positions (others are kept).
    func save(_ positions: [String: String]) throws
}

/// Positions in memory: `ipsight parse` without `--state`, and tests.
public final class MemoryPositionStore: PositionStore {
    private let state: Mutex<[String: String]>

    public init(_ positions: [String: String] = [:]) { state = Mutex(positions) }

    public func positions() -> [String: String] { state.withLock { $0 } }

    public func save(_ positions: [String: String]) {
        state.withLock { $0.merge(positions) { $1 } }
    }
}

/// Positions in a small text file, one source a line:
///
/// ```
/// journal s=5a...;i=f4240;b=...;m=0;t=579db...;x=fa6c...
/// file 1835012:64769:11180:8a3f01c2d44e7b10@1796599101123456789:/var/log/auth.log
/// ```
///
/// The file is replaced atomically (a temporary file, fsync, rename), so a crash
/// leaves the old positions or the new ones, never a mix.
public final class PositionFile: PositionStore {
    public let path: String
    private let cache: Mutex<[String: String]>

    /// Reads the file at `path`; no file yet is no positions.
    public init(path: String) throws(SourceError) {
        self.path = path
        let bytes: [UInt8]?
        do { bytes = try readSmallFile(path, limit: 1 << 20) } catch { throw SourceError.invalidPosition("\(error)") }
        guard let bytes else {
            cache = Mutex([:])
            return
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SourceError.invalidPosition("\(path): not UTF-8 text")
        }
        cache = Mutex(try Self.parse(text, path: path))
    }

    public func positions() -> [String: String] { cache.withLock { $0 } }

    public func save(_ positions: [String: String]) throws {
        let text = cache.withLock { cache in
            cache.merge(positions) { $1 }
            return Self.text(cache)
        }
        try AtomicFile.write(Array(text.utf8), to: path, mode: 0o600)
    }

    static func parse(_ text: String, path: String) throws(SourceError) -> [String: String] {
        var positions: [String: String] = [:]
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            if line.isEmpty { continue }
            guard let space = line.firstIndex(of: " ") else {
                throw SourceError.invalidPosition("\(path):\(number): expected 'journal CURSOR' or 'file POSITION'")
            }
            let value = String(line[line.index(after: space)...])
            switch line[..<space] {
            case "journal" where !value.isEmpty:
                positions[SourceKey.journal] = value
            case "file":
                guard let position = FilePosition(serialized: value) else {
                    throw SourceError.invalidPosition("\(path):\(number): not a file position: \(value)")
                }
                positions[SourceKey.file(position.path)] = value
            default:
                throw SourceError.invalidPosition("\(path):\(number): expected 'journal CURSOR' or 'file POSITION'")
            }
        }
        return positions
    }

    static func text(_ positions: [String: String]) -> String {
        var lines: [String] = []
        if let cursor = positions[SourceKey.journal] { lines.append("journal \(cursor)") }
        for key in positions.keys.sorted() where key.hasPrefix("file:") { lines.append("file \(positions[key]!)") }
        return lines.map { $0 + "\n" }.joined()
    }
}
