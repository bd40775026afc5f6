#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where each source stopped, kept in a small text file so that a command run
/// again (or restarted) continues after the last record it processed:
///
/// ```
/// journal s=5a...;i=f4240;b=...;m=0;t=579db...;x=fa6c...
/// file 1835012:64769:11180:8a3f01c2d44e7b10@1796599101123456789:/var/log/auth.log
/// ```
///
/// The file is replaced atomically (a temporary file, fsync, rename), so a crash
/// leaves the old state or the new one, never a mix.
public struct SourceState: Sendable, Equatable {
    public var journalCursor: String?
    /// Positions by file path.
    public var files: [String: FilePosition] = [:]

    public init(journalCursor: String? = nil, files: [String: FilePosition] = [:]) {
        self.journalCursor = journalCursor
        self.files = files
    }

    public init(text: String, path: String = "state") throws(SourceError) {
        var number = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            if line.isEmpty { continue }
            guard let space = line.firstIndex(of: " ") else {
                throw SourceError.invalidPosition("\(path):\(number): expected 'journal CURSOR' or 'file POSITION'")
            }
            let kind = line[..<space]
            let value = String(line[line.index(after: space)...])
            switch kind {
            case "journal" where !value.isEmpty:
                journalCursor = value
            case "file":
                guard let position = FilePosition(serialized: value) else {
                    throw SourceError.invalidPosition("\(path):\(number): not a file position: \(value)")
                }
                files[position.path] = position
            default:
                throw SourceError.invalidPosition("\(path):\(number): expected 'journal CURSOR' or 'file POSITION'")
            }
        }
    }

    public var text: String {
        var lines: [String] = []
        if let journalCursor { lines.append("journal \(journalCursor)") }
        for key in files.keys.sorted() { lines.append("file \(files[key]!.serialized)") }
        return lines.map { $0 + "\n" }.joined()
    }

    /// The state saved at `path`; empty when there is no such file yet.
    public static func load(path: String) throws(SourceError) -> SourceState {
        guard let f = fopen(path, "rb") else {
            if errno == ENOENT { return SourceState() }
            throw SourceError.io(path: path, operation: "open", errno: errno)
        }
        defer { fclose(f) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 4096, f) }
            if n == 0 { break }
            data += chunk[0..<n]
            if data.count > 1 << 20 { throw SourceError.invalidPosition("\(path): larger than 1 MiB") }
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw SourceError.invalidPosition("\(path): not UTF-8 text")
        }
        return try SourceState(text: text, path: path)
    }

    /// Replaces the file at `path` with this state, atomically.
    public func save(path: String) throws(SourceError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SourceError.io(path: temporary, operation: "open", errno: errno) }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw SourceError.io(path: temporary, operation: "write", errno: code)
            }
            offset += n
        }
        bytes.removeAll()
        if fsync(fd) != 0 {
            let code = errno
            close(fd)
            throw SourceError.io(path: temporary, operation: "fsync", errno: code)
        }
        close(fd)
        if rename(temporary, path) != 0 { throw SourceError.io(path: path, operation: "rename", errno: errno) }
    }
}
