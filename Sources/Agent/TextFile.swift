#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole of a small text file, or nil when it cannot be read.
func readTextFile(_ path: String) -> String? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { bytes.append(contentsOf: chunk[0..<n]) }
        if n < chunk.count { break }
    }
    if ferror(f) != 0 { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

/// Creates a directory and its parents (mode 0750); fine if it exists.
func makeDirectories(_ path: String) -> Bool {
    var prefix = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        prefix += "/" + part
        if mkdir(prefix, 0o750) != 0 && errno != EEXIST { return false }
    }
    return true
}

import LogSources

/// The position at the current end of a file, for a source that starts with
/// new lines only; nil when the file does not exist yet (then it is read whole
/// once it appears: everything in it is new).
func endPosition(of path: String) -> FilePosition? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    // headHash 0: the first line is not checked on resume (it was never read).
    return FilePosition(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), offset: UInt64(st.st_size), headHash: 0,
                        modified: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
}
