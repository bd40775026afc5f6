#if canImport(Glibc)
import Glibc
#endif
import IPSightCore

/// The position at the current end of a file, for a source that starts with
/// new lines only; nil when the file does not exist yet (then it is read whole
/// once it appears: everything in it is new).
public func endPosition(of path: String) -> FilePosition? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    // headHash 0: the first line is not checked on resume (it was never read).
    return FilePosition(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), offset: UInt64(st.st_size), headHash: 0,
                        modified: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec))
}
