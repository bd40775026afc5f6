#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a log file once, or follows it the way `tail -F` does.
///
/// Following survives rotation by rename-and-create (the path gets a new inode:
/// the old file is read to its end first), copytruncate (the size drops below
/// the offset, or the first line changes), and a file that does not exist yet.
/// Each line is handed out with the `FilePosition` just after it; starting
/// from a saved position neither repeats nor skips a line.
public final class FileFollower {
    public let path: String
    public let follow: Bool
    /// Time between checks for new data and rotation while following.
    public var pollInterval: Double
    public private(set) var rotations = 0
    public private(set) var truncations = 0
    /// The number of the line being handed out in the current file (skipped lines
    /// count; a rotation or truncation starts again at 1).
    public private(set) var lineNumber = 0

    private var fd: Int32 = -1
    private var identity: (device: UInt64, inode: UInt64) = (0, 0)
    private var headHash: UInt64 = 0
    private var buffer: LineBuffer
    /// Lines to read from a rotated file before the live one, when resuming.
    private var pendingRotated: (fd: Int32, offset: UInt64)?
    private var resume: FilePosition?
    private var opened = false
    private var borrowed = false

    /// - Parameters:
    ///   - position: where a previous run stopped, from a record's `position`.
    ///   - maxLineLength: longer lines are skipped and counted.
    public init(path: String, follow: Bool = false, from position: FilePosition? = nil,
                pollInterval: Double = 0.25, maxLineLength: Int = 64 * 1024) {
        self.path = path
        self.follow = follow
        self.pollInterval = pollInterval
        self.resume = position
        buffer = LineBuffer(maxLineLength: maxLineLength)
    }

    /// Reads an already open stream such as standard input to its end; the
    /// descriptor is not closed and positions carry only offsets.
    public init(fileDescriptor: Int32, name: String = "-", maxLineLength: Int = 64 * 1024) {
        self.path = name
        self.follow = false
        self.pollInterval = 0.25
        self.resume = nil
        buffer = LineBuffer(maxLineLength: maxLineLength)
        fd = fileDescriptor
        opened = true
        borrowed = true
    }

    deinit {
        if fd >= 0 && !borrowed { close(fd) }
        if let rotated = pendingRotated { close(rotated.fd) }
        buffer.deallocate()
    }

    public var skips: SkipCounts { buffer.skips }

    /// The position after the last line handed out.
    public var position: FilePosition {
        FilePosition(path: path, device: identity.device, inode: identity.inode,
                     offset: buffer.consumedOffset, headHash: headHash)
    }

    public enum Progress: Equatable {
        /// Some lines were handed out.
        case lines(Int)
        /// Nothing new yet (following); poll again after `pollInterval`.
        case idle
        /// The whole file was read (not following).
        case end
    }

    /// Hands out the lines available now.
    public func poll(_ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> Progress {
        if !opened {
            guard try openInitial() else {
                if follow { return .idle }
                throw SourceError.io(path: path, operation: "open", errno: ENOENT)
            }
        }
        var count = 0
        if let rotated = pendingRotated {
            count += try drainRotated(rotated, visit)
        }
        if follow { try checkTruncation() }
        let n = try readChunk(visit)
        count += n.lines
        if n.bytes > 0 { return .lines(count) }
        if !follow {
            try buffer.flushPartial { line, offset, number in
                count += 1
                lineNumber = number
                try visit(line, makePosition(offset, line: line))
            }
            return count > 0 ? .lines(count) : .end
        }
        if try checkRotation(&count, visit) {
            // A new file: read what it already holds now.
            count += try readChunk(visit).lines
        }
        return count > 0 ? .lines(count) : .idle
    }

    /// Polls until `shouldStop` returns true (following) or the end (not following).
    public func run(shouldStop: () -> Bool = { false },
                    _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws {
        while !shouldStop() {
            switch try poll(visit) {
            case .lines: continue
            case .end: return
            case .idle: sleepSeconds(pollInterval)
            }
        }
    }

    // MARK: - Opening and resuming

    private func openInitial() throws -> Bool {
        guard let (newFD, st) = try openPath() else { return false }
        opened = true
        fd = newFD
        identity = (UInt64(st.st_dev), UInt64(st.st_ino))
        headHash = firstLineHash(fd: fd) ?? 0
        guard let saved = resume else {
            buffer.reset(offset: 0)
            return true
        }
        resume = nil
        let size = UInt64(st.st_size)
        let sameHead = saved.headHash == 0 || saved.headHash == headHash
        // The device number is not compared: it can change across reboots
        // (overlay and btrfs mounts) while inode and first line identify the file.
        if saved.inode == identity.inode, size >= saved.offset, sameHead {
            try seek(fd, to: saved.offset)
            buffer.reset(offset: saved.offset)
            return true
        }
        // Rotated while we were down: finish the old file first if it is still beside us.
        if saved.inode != identity.inode, let rotated = findRotated(saved) {
            pendingRotated = rotated
        }
        buffer.reset(offset: 0)
        return true
    }

    private func findRotated(_ saved: FilePosition) -> (fd: Int32, offset: UInt64)? {
        for candidate in [path + ".1", path + ".0"] {
            let oldFD = open(candidate, O_RDONLY | O_CLOEXEC)
            if oldFD < 0 { continue }
            var st = stat()
            if fstat(oldFD, &st) == 0, UInt64(st.st_ino) == saved.inode,
               UInt64(st.st_size) >= saved.offset,
               saved.headHash == 0 || firstLineHash(fd: oldFD) == saved.headHash,
               lseek(oldFD, off_t(saved.offset), SEEK_SET) >= 0 {
                return (oldFD, saved.offset)
            }
            close(oldFD)
        }
        return nil
    }

    /// Reads what is left of the file this one was rotated from; its lines carry
    /// the new file's position at offset 0, so a restart after them starts the new file.
    private func drainRotated(_ rotated: (fd: Int32, offset: UInt64),
                              _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> Int {
        var old = LineBuffer(maxLineLength: buffer.maxLineLength)
        defer { old.deallocate() }
        old.reset(offset: rotated.offset)
        var count = 0
        let fresh = FilePosition(path: path, device: identity.device, inode: identity.inode, offset: 0, headHash: headHash)
        while try old.fill(from: rotated.fd) > 0 {
            try old.drainLines { line, _, _ in count += 1; try visit(line, fresh) }
        }
        try old.flushPartial { line, _, _ in count += 1; try visit(line, fresh) }
        buffer.skips = buffer.skips + old.skips
        close(rotated.fd)
        pendingRotated = nil
        return count
    }

    private func openPath() throws -> (Int32, stat)? {
        let newFD = open(path, O_RDONLY | O_CLOEXEC)
        if newFD < 0 {
            if errno == ENOENT { return nil }
            throw SourceError.io(path: path, operation: "open", errno: errno)
        }
        var st = stat()
        guard fstat(newFD, &st) == 0 else {
            let code = errno
            close(newFD)
            throw SourceError.io(path: path, operation: "stat", errno: code)
        }
        return (newFD, st)
    }

    // MARK: - Reading

    private func readChunk(_ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> (bytes: Int, lines: Int) {
        var lines = 0
        var total = 0
        // Bounded work per poll so a caller can persist positions and stop.
        for _ in 0..<16 {
            let n: Int
            do { n = try buffer.fill(from: fd) } catch { throw SourceError.io(path: path, operation: "read", errno: errnoOf(error)) }
            if n == 0 { break }
            total += n
            try buffer.drainLines { line, offset, number in
                lines += 1
                lineNumber = number
                try visit(line, makePosition(offset, line: line))
            }
        }
        return (total, lines)
    }

    private func makePosition(_ offset: UInt64, line: UnsafeRawBufferPointer) -> FilePosition {
        if headHash == 0 && !borrowed {
            // A line was handed out, so the first line is complete: it identifies the file.
            headHash = firstLineHash(fd: fd) ?? 0
        }
        return FilePosition(path: path, device: identity.device, inode: identity.inode, offset: offset, headHash: headHash)
    }

    // MARK: - Rotation

    /// copytruncate: the file is shorter than what was read, or its first line
    /// changed (truncated and refilled past the offset): start again at 0.
    private func checkTruncation() throws {
        var current = stat()
        guard fstat(fd, &current) == 0 else { throw SourceError.io(path: path, operation: "stat", errno: errno) }
        let offset = buffer.consumedOffset
        let shorter = UInt64(current.st_size) < offset
        let newHead = !shorter && headHash != 0 && firstLineHash(fd: fd).map { $0 != headHash } == true
        guard shorter || newHead else { return }
        truncations += 1
        try seek(fd, to: 0)
        buffer.reset(offset: 0)
        headHash = 0
    }

    /// Rename and create: returns true when reading continues in the new file.
    private func checkRotation(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> Bool {
        var st = stat()
        if stat(path, &st) != 0 { return false } // renamed away and not yet recreated: keep reading the old file
        if UInt64(st.st_ino) == identity.inode && UInt64(st.st_dev) == identity.device { return false }
        // Rename and create: the old descriptor was read to its end above; a
        // partial last line there will never be finished, so hand it out now.
        try buffer.flushPartial { line, off, number in
            count += 1
            lineNumber = number
            try visit(line, makePosition(off, line: line))
        }
        guard let (newFD, newStat) = try openPath() else { return false }
        close(fd)
        fd = newFD
        identity = (UInt64(newStat.st_dev), UInt64(newStat.st_ino))
        headHash = 0
        buffer.reset(offset: 0)
        rotations += 1
        return true
    }

    private func seek(_ fd: Int32, to offset: UInt64) throws {
        if lseek(fd, off_t(offset), SEEK_SET) < 0 { throw SourceError.io(path: path, operation: "seek", errno: errno) }
    }

    /// The hash of the file's first line (at most its first 1 KiB), or nil
    /// while the file has no complete first line.
    private func firstLineHash(fd: Int32) -> UInt64? {
        let limit = 1024
        var head = [UInt8](repeating: 0, count: limit)
        let n = head.withUnsafeMutableBytes { pread(fd, $0.baseAddress, limit, 0) }
        guard n > 0 else { return nil }
        return head.withUnsafeBytes { raw -> UInt64? in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<n])
            if let nl = bytes.firstIndex(of: 0x0A) {
                return Self.fnv1a(UnsafeRawBufferPointer(rebasing: bytes[0..<nl]))
            }
            return n == limit ? Self.fnv1a(bytes) : nil
        }
    }

    /// FNV-1a, 64 bit; never 0 so 0 can mean "no first line yet".
    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            hash ^= UInt64(b)
            hash = hash &* 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }
}

func errnoOf(_ error: any Error) -> Int32 {
    if case .io(_, _, let code) = error as? SourceError { return code }
    return EIO
}

func sleepSeconds(_ seconds: Double) {
    var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var rest = timespec()
    while nanosleep(&ts, &rest) != 0 && errno == EINTR { ts = rest }
}
