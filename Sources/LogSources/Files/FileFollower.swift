#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Lines a followed file held that can no longer be read: the rotated file
/// with them was deleted or moved away, or compressed in a format that is not
/// read. Each gap is reported once, when the follower meets it.
public struct FileGap: Sendable, Equatable, CustomStringConvertible {
    /// The followed file.
    public var path: String
    /// How many files (rotated generations, or the rest of one) were not read.
    public var files: Int
    /// What happened and what was lost, for a log line.
    public var detail: String

    public init(path: String, files: Int, detail: String) {
        self.path = path
        self.files = files
        self.detail = detail
    }

    public var description: String { "\(path): \(detail)" }
}

/// Reads a log file once, or follows it the way `tail -F` does, through every
/// way logrotate rotates it.
///
/// When the path names a new file (rename and create) or the file was cut
/// short (copytruncate), the lines not read yet are in a rotated generation
/// beside it (`RotatedFiles`: numbered or dated, plain or gzip): the follower
/// finishes that generation, then every newer one in order, then reads the
/// live file from its start. A saved position names the file it was in by
/// inode and first line, so resuming finds it wherever logrotate moved it in
/// the directory, compressed or not, however many rotations happened in between.
/// Each line is handed out with the `FilePosition` just after it, also inside
/// a rotated generation: starting from a saved position neither repeats nor
/// skips a line. What cannot be read any more is reported through `onGap`.
public final class FileFollower {
    public let path: String
    public let follow: Bool
    /// Time between checks for new data and rotation while following.
    public var pollInterval: Double
    /// Moves to another file (a rotated generation or a new live file).
    public private(set) var rotations = 0
    public private(set) var truncations = 0
    /// The number of the line being handed out in the current file (skipped lines
    /// count; a rotation or truncation starts again at 1).
    public private(set) var lineNumber = 0
    /// Gaps met so far (each also given to `onGap`).
    public private(set) var gaps = 0
    /// Called once per gap, on the polling thread.
    public var onGap: ((FileGap) -> Void)?

    private var fd: Int32 = -1
    private var identity: (device: UInt64, inode: UInt64) = (0, 0)
    private var headHash: UInt64 = 0
    /// The current file's modification time as last seen (see `FilePosition.modified`).
    private var modified: Int64 = 0
    private var buffer: LineBuffer
    /// The rotated generation being read before the live file; nil while reading the live file.
    private var rotatedPath: String?
    /// Set while the file being read is gzip data.
    private var gzip: GzipStream?
    /// Decompressed bytes still to drop to reach the resume offset in `gzip`.
    private var skipRemaining: UInt64 = 0
    /// At the end of a rotated generation with none newer: the live file's inode
    /// when the directory was looked at (0: it did not exist), so it is scanned
    /// once rather than at every poll.
    private var liveAfterRotated: UInt64?
    /// Newer generations in a format not read, reported when they are passed.
    private var unreadableAhead: [RotatedFile] = []
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
        buffer.deallocate()
    }

    public var skips: SkipCounts { buffer.skips }

    /// The position after the last line handed out.
    public var position: FilePosition {
        FilePosition(path: path, device: identity.device, inode: identity.inode,
                     offset: buffer.consumedOffset, headHash: headHash, modified: modified)
    }

    public enum Progress: Equatable {
        /// Some lines were handed out (possibly none yet while a compressed
        /// rotated file is decompressed up to the resume point): poll again at once.
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
        // Each turn reads the current file up to its end for now, or moves to the next one.
        for _ in 0..<64 {
            if skipRemaining > 0, !(try skipAhead()) { return .lines(count) }
            if follow && rotatedPath == nil && !borrowed {
                try checkTruncation(&count, visit)
                if skipRemaining > 0 { continue }
            }
            let n = try readChunk(visit)
            count += n.lines
            if n.bytes > 0 { return .lines(count) }
            if rotatedPath != nil {
                switch try leaveRotated(&count, visit) {
                case .moved: continue
                case .waiting: return count > 0 ? .lines(count) : .idle
                case .ended: return count > 0 ? .lines(count) : .end
                }
            }
            if !follow {
                try flushPartial(&count, visit)
                return count > 0 ? .lines(count) : .end
            }
            guard try checkRotation(&count, visit) else { break }
            if fd < 0 { break } // the new live file vanished again: wait for it
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
            case .idle: Clock.sleep(pollInterval)
            }
        }
    }

    // MARK: - Opening and resuming

    private func openInitial() throws -> Bool {
        let live = try openPath()
        guard let saved = resume else {
            guard let (newFD, st) = live else { return false }
            opened = true
            adoptLive(newFD, st, at: 0)
            return true
        }
        resume = nil
        opened = true
        var inPlace = false
        if let (newFD, st) = live {
            let head = Self.firstLineHash(fd: newFD) ?? 0
            // The device number is not compared: it can change across reboots
            // (overlay and btrfs mounts) while inode and first line identify the file.
            inPlace = UInt64(st.st_ino) == saved.inode
            if inPlace, UInt64(st.st_size) >= saved.offset, saved.headHash == 0 || saved.headHash == head {
                adoptLive(newFD, st, at: saved.offset)
                try seek(fd, to: saved.offset)
                return true
            }
            close(newFD)
        }
        // Rotated while we were stopped (renamed, or copied and truncated in
        // place): finish that file wherever it is now, then the newer ones.
        var scan = RotatedFiles.scan(path)
        defer { RotatedFiles.close(scan.plain + scan.extended, keeping: fd) }
        if let found = Self.locate(inode: inPlace ? nil : saved.inode, head: saved.headHash, offset: saved.offset,
                                   excluding: inPlace ? saved.inode : nil, in: &scan) {
            if inPlace { truncations += 1 } else { rotations += 1 }
            try readRotated(found, in: &scan, at: saved.offset)
            return true
        }
        // Not found: the gap cannot be closed. Decide where to go on.
        let list = scan.plain
        let lost = "the lines after offset \(saved.offset) of the file it was read from (inode \(saved.inode))"
        if saved.modified != 0 {
            // The generations modified after the saved file was last seen are the
            // newer ones; the older ones were read before it.
            let newer = list.indices.filter { list[$0].modified > saved.modified }
            let unreadable = newer.prefix { !list[$0].readable }
            let readable = newer.count - unreadable.count
            let then = readable > 0 ? "; the \(readable) rotated files written since are read" : ""
            if unreadable.isEmpty {
                report(files: 1, "\(lost) are lost: "
                       + (inPlace ? "the file was truncated and no copy of it is beside it (copytruncate with the copy deleted "
                                    + "or moved to another directory, or truncated by hand)"
                                  : "the file is no longer beside it (deleted, or moved to another directory such as logrotate's olddir)")
                       + then)
            } else {
                report(files: unreadable.count, "\(lost) are lost: it is not beside it in a readable form; rotated since in a format "
                       + "that is not read (only gzip is): \(unreadable.map { list[$0].described }.joined(separator: ", "))" + then)
            }
            if readable > 0 {
                rotations += 1
                try readRotated(&scan.plain[newer[unreadable.count]], at: 0)
                return true
            }
        } else if let newest = list.lastIndex(where: { !$0.readable }) {
            // logrotate compresses the older generations: the saved file is taken
            // to be the newest one compressed in a format that is not read.
            report(files: 1, "\(lost) are lost: it is most likely \(list[newest].described), "
                   + "which is not read (only gzip is); \(list.count - newest - 1) newer rotated files are read")
            if newest + 1 < list.count {
                rotations += 1
                try readRotated(&scan.plain[newest + 1], at: 0)
                return true
            }
        } else if !inPlace && !list.isEmpty {
            // logrotate deletes the oldest generations first: those still here are newer.
            report(files: 1, "\(lost) are lost: the file is no longer beside it (deleted, or moved to another directory "
                   + "such as logrotate's olddir); the \(list.count) rotated files still beside it are taken as newer and read")
            rotations += 1
            try readRotated(&scan.plain[0], at: 0)
            return true
        } else if inPlace {
            report(files: 1, "\(lost) are lost: the file was truncated and no copy of it is beside it "
                   + "(copytruncate with the copy deleted or moved to another directory, or truncated by hand)")
        } else {
            report(files: 1, "\(lost) are lost: the file is no longer beside it (deleted, or moved to another directory "
                   + "such as logrotate's olddir)")
        }
        return try readLive()
    }

    /// Takes the live file's descriptor, reading from `offset`.
    private func adoptLive(_ newFD: Int32, _ st: stat, at offset: UInt64) {
        fd = newFD
        identity = (UInt64(st.st_dev), UInt64(st.st_ino))
        modified = modificationTime(st)
        headHash = Self.firstLineHash(fd: fd) ?? 0
        rotatedPath = nil
        buffer.reset(offset: offset)
    }

    /// Starts reading the live file from its start; false (waiting for it) while it does not exist.
    private func readLive() throws -> Bool {
        closeCurrent()
        rotatedPath = nil
        liveAfterRotated = nil
        guard let (newFD, st) = try openPath() else {
            // Opened again by the next poll, from its start.
            opened = false
            buffer.reset(offset: 0)
            return false
        }
        adoptLive(newFD, st, at: 0)
        return true
    }

    /// Starts reading a rotated generation at `offset`, taking its descriptor.
    private func readRotated(_ file: inout RotatedFile, at offset: UInt64) throws {
        closeCurrent()
        let head = file.head() ?? 0
        fd = file.fd
        file.fd = -1
        identity = (file.device, file.inode)
        modified = file.modified
        headHash = head
        rotatedPath = file.path
        liveAfterRotated = nil
        buffer.reset(offset: offset)
        if file.format == .gzip {
            guard let stream = GzipStream(fd: fd) else {
                throw SourceError.io(path: file.path, operation: "start gzip decompression", errno: ENOMEM)
            }
            gzip = stream
            skipRemaining = offset
        } else {
            try seek(fd, to: offset)
        }
    }

    private func readRotated(_ found: (extended: Bool, index: Int), in scan: inout (plain: [RotatedFile], extended: [RotatedFile]),
                             at offset: UInt64) throws {
        if found.extended {
            try readRotated(&scan.extended[found.index], at: offset)
        } else {
            try readRotated(&scan.plain[found.index], at: offset)
        }
    }

    private func closeCurrent() {
        if fd >= 0 && !borrowed { close(fd) }
        fd = -1
        gzip = nil
        skipRemaining = 0
    }

    /// Decompresses up to the resume offset in bounded steps (a poll never
    /// blocks for long); true once there.
    private func skipAhead() throws -> Bool {
        guard let gzip else {
            skipRemaining = 0
            return true
        }
        do {
            // Ended before the offset: a copy shorter than what was read (the
            // daemon wrote between copy and truncation); nothing of it is left.
            if !(try gzip.skip(&skipRemaining, budget: 32 << 20)) { skipRemaining = 0 }
        } catch {
            throw SourceError.io(path: rotatedPath ?? path, operation: "read", errno: errnoOf(error))
        }
        return skipRemaining == 0
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
        // Bounded work per poll (1 MiB), so a caller can persist positions and stop,
        // and a batch of records stays a few megabytes.
        for _ in 0..<4 {
            let n: Int
            do {
                if let gzip { n = try buffer.fill(from: gzip) } else { n = try buffer.fill(from: fd) }
            } catch {
                throw SourceError.io(path: rotatedPath ?? path, operation: "read", errno: errnoOf(error))
            }
            if n == 0 { break }
            if total == 0 && gzip == nil {
                // Once per poll with new data, before its lines are handed out: the
                // time that places this file among its rotated generations.
                var st = stat()
                if fstat(fd, &st) == 0 { modified = modificationTime(st) }
            }
            total += n
            try buffer.drainLines { line, offset, number in
                lines += 1
                lineNumber = number
                try visit(line, makePosition(offset, line: line))
            }
        }
        return (total, lines)
    }

    /// Hands out a partial last line: the end of a file that nothing writes to any more.
    private func flushPartial(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws {
        try buffer.flushPartial { line, offset, number in
            count += 1
            lineNumber = number
            try visit(line, makePosition(offset, line: line))
        }
    }

    private func makePosition(_ offset: UInt64, line: UnsafeRawBufferPointer) -> FilePosition {
        if headHash == 0 && !borrowed {
            // A line was handed out, so the first line is complete: it identifies the file.
            headHash = (gzip != nil ? GzipStream.firstLineHash(fd: fd) : Self.firstLineHash(fd: fd)) ?? 0
        }
        return FilePosition(path: path, device: identity.device, inode: identity.inode, offset: offset, headHash: headHash,
                            modified: modified)
    }

    // MARK: - Rotation

    /// copytruncate: the file is shorter than what was read, or its first line
    /// changed (truncated and refilled past the offset). logrotate copied it
    /// just before: the rest is read from the copy, then the file from 0.
    private func checkTruncation(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws {
        var current = stat()
        guard fstat(fd, &current) == 0 else { throw SourceError.io(path: path, operation: "stat", errno: errno) }
        let offset = buffer.consumedOffset
        let shorter = UInt64(current.st_size) < offset
        let newHead = !shorter && headHash != 0 && Self.firstLineHash(fd: fd).map { $0 != headHash } == true
        guard shorter || newHead else { return }
        truncations += 1
        if headHash != 0 {
            var scan = RotatedFiles.scan(path)
            defer { RotatedFiles.close(scan.plain + scan.extended, keeping: fd) }
            if let found = Self.locate(inode: nil, head: headHash, offset: offset, excluding: identity.inode, in: &scan) {
                // A partial line still buffered is read again, whole, from the copy.
                try readRotated(found, in: &scan, at: offset)
                return
            }
        }
        if offset > 0 {
            report(files: 1, "was truncated and no copy of it is beside it (copytruncate with the copy deleted or moved "
                   + "to another directory, or truncated by hand): lines written after offset \(offset) before the truncation, if any, are lost")
        }
        try seek(fd, to: 0)
        buffer.reset(offset: 0)
        headHash = 0
    }

    /// Rename and create, seen at the end of the file being read: returns true
    /// when reading goes on in another file.
    private func checkRotation(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> Bool {
        var st = stat()
        if stat(path, &st) != 0 { return false } // renamed away and not yet recreated: keep reading the old file
        if UInt64(st.st_ino) == identity.inode && UInt64(st.st_dev) == identity.device { return false }
        // The daemon writes into the renamed file until it reopens its log; it
        // has once the new file holds data. Until then, stay with the old one.
        if st.st_size == 0 { return false }
        let more = try readChunk(visit)
        count += more.lines
        if more.bytes > 0 { return true }
        // A partial last line in the old file will never be finished: hand it out now.
        try flushPartial(&count, visit)
        rotations += 1
        try moveOn()
        return true
    }

    private enum Leave { case moved, waiting, ended }

    /// At the end of a rotated generation: on to the next newer one, or to the live file.
    private func leaveRotated(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws -> Leave {
        if liveAfterRotated == nil {
            var scan = RotatedFiles.scan(path)
            defer { RotatedFiles.close(scan.plain + scan.extended, keeping: fd) }
            if var next = successor(in: &scan) {
                try finishRotated(&count, visit)
                rotations += 1
                try readRotated(&next, at: 0)
                return .moved
            }
            var st = stat()
            liveAfterRotated = stat(path, &st) == 0 ? UInt64(st.st_ino) : 0
        }
        if follow {
            var st = stat()
            guard stat(path, &st) == 0 else { return .waiting }
            if UInt64(st.st_ino) != liveAfterRotated {
                // Rotated again meanwhile: look at the directory again.
                liveAfterRotated = nil
                return .moved
            }
            // The newest rotated file may still get the daemon's last lines until
            // it reopens its log, which it has once the live file holds data.
            guard st.st_size > 0 else { return .waiting }
            let more = try readChunk(visit)
            count += more.lines
            if more.bytes > 0 { return .moved }
        }
        try finishRotated(&count, visit)
        rotations += 1
        if try readLive() { return .moved }
        return follow ? .waiting : .ended
    }

    /// After the file read from `path` was renamed away: the next newer
    /// generation if several rotations happened since the last poll, else the live file.
    private func moveOn() throws {
        var scan = RotatedFiles.scan(path)
        defer { RotatedFiles.close(scan.plain + scan.extended, keeping: fd) }
        if var next = successor(in: &scan) {
            reportUnreadable()
            try readRotated(&next, at: 0)
        } else {
            reportUnreadable()
            _ = try readLive()
        }
    }

    /// The readable generation after the one being read, found in the directory
    /// by its inode or, compressed since, its first line; nil when the live file
    /// comes next. Newer generations in a format not read are kept to report.
    private func successor(in scan: inout (plain: [RotatedFile], extended: [RotatedFile])) -> RotatedFile? {
        unreadableAhead = []
        var newer: [RotatedFile]
        if let found = Self.locate(inode: identity.inode, head: headHash, offset: buffer.consumedOffset, excluding: nil, in: &scan) {
            let list = found.extended ? scan.extended : scan.plain
            newer = Array(list[(found.index + 1)...])
        } else {
            // Deleted, moved away or compressed in a format not read: the newer
            // generations were written after its last write (logrotate keeps
            // modification times through renames and compression, so its own
            // compressed copy is not newer).
            var st = stat()
            let last = fstat(fd, &st) == 0 ? modificationTime(st) : .max
            newer = scan.plain.filter { $0.modified > last }
        }
        while let first = newer.first, !first.readable {
            unreadableAhead.append(first)
            newer.removeFirst()
        }
        guard let next = newer.first else { return nil }
        // Taken out of the scan so its descriptor survives the scan's closing.
        for i in scan.plain.indices where scan.plain[i].fd == next.fd { scan.plain[i].fd = -1 }
        for i in scan.extended.indices where scan.extended[i].fd == next.fd { scan.extended[i].fd = -1 }
        return next
    }

    /// The end of a rotated generation: its partial last line, and what could not be read.
    private func finishRotated(_ count: inout Int, _ visit: (UnsafeRawBufferPointer, FilePosition) throws -> Void) throws {
        if let gzip, let failure = gzip.failure {
            // A line cut off by the damage is dropped: half a line could read as a different login.
            buffer.reset(offset: buffer.consumedOffset)
            report(files: 1, "\(rotatedPath ?? path): \(failure) after \(gzip.produced) bytes: the rest of it is lost")
        } else {
            try flushPartial(&count, visit)
        }
        reportUnreadable()
    }

    private func reportUnreadable() {
        guard !unreadableAhead.isEmpty else { return }
        let files = unreadableAhead
        unreadableAhead = []
        report(files: files.count, "\(files.count) rotated file\(files.count == 1 ? "" : "s") in a format that is not read "
               + "(only gzip is): \(files.map(\.described).joined(separator: ", ")): their lines are lost")
    }

    private func report(files: Int, _ detail: String) {
        gaps += 1
        onGap?(FileGap(path: path, files: files, detail: detail))
    }

    /// Where a file is among the rotated generations: by inode (renamed; its
    /// first line checked against inode reuse), else by first line (a copy, or
    /// compressed into a new file): the newest one at least `offset` long, or
    /// the newest one (a copy can be shorter than what was read: the daemon
    /// wrote between logrotate's copy and its truncation).
    static func locate(inode: UInt64?, head: UInt64, offset: UInt64, excluding: UInt64?,
                       in scan: inout (plain: [RotatedFile], extended: [RotatedFile])) -> (extended: Bool, index: Int)? {
        func byInode(_ list: inout [RotatedFile]) -> Int? {
            guard let inode else { return nil }
            for i in list.indices where list[i].readable && list[i].inode == inode {
                if head == 0 || list[i].head() == head { return i }
            }
            return nil
        }
        func byHead(_ list: inout [RotatedFile]) -> Int? {
            guard head != 0 else { return nil }
            var newest: Int?
            for i in list.indices.reversed() where list[i].readable && list[i].inode != excluding && list[i].inode != inode {
                guard list[i].head() == head else { continue }
                if newest == nil { newest = i }
                if (list[i].length().map { $0 >= offset & 0xFFFF_FFFF || offset > 0xFFFF_FFFF }) ?? true { return i }
            }
            return newest
        }
        if let i = byInode(&scan.plain) { return (false, i) }
        if let i = byInode(&scan.extended) { return (true, i) }
        if let i = byHead(&scan.plain) { return (false, i) }
        if let i = byHead(&scan.extended) { return (true, i) }
        return nil
    }

    private func seek(_ fd: Int32, to offset: UInt64) throws {
        if lseek(fd, off_t(offset), SEEK_SET) < 0 { throw SourceError.io(path: rotatedPath ?? path, operation: "seek", errno: errno) }
    }

    /// The hash of the file's first line (at most its first 1 KiB), or nil
    /// while the file has no complete first line.
    static func firstLineHash(fd: Int32) -> UInt64? {
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
