#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts of input a source refused, reported as warnings rather than crashes.
public struct SkipCounts: Sendable, Equatable {
    /// Lines longer than the limit, skipped whole.
    public var longLines = 0
    /// Lines holding NUL bytes or invalid UTF-8.
    public var binaryLines = 0

    public init() {}

    public static func + (a: SkipCounts, b: SkipCounts) -> SkipCounts {
        var r = a
        r.longLines += b.longLines
        r.binaryLines += b.binaryLines
        return r
    }
}

/// Splits bytes read from a file descriptor into lines with bounded memory.
///
/// The buffer never grows past `maxLineLength` plus one read: a longer line is
/// dropped up to its newline and counted, so a 1 GB line costs no more memory
/// than a short one. A partial last line stays buffered until its newline comes.
struct LineBuffer {
    let maxLineLength: Int
    let readSize: Int
    private var storage: UnsafeMutableRawBufferPointer
    /// Bytes [start, end) are read but not yet handed out.
    private var start = 0
    private var end = 0
    /// True while skipping the rest of an overlong line.
    private var discarding = false
    /// The file offset after the last line handed out or discarded (a partial
    /// line still waiting for its newline is not included).
    private(set) var consumedOffset: UInt64 = 0
    var skips = SkipCounts()
    /// Lines seen so far, skipped ones included: the 1-based number of the last line.
    private(set) var lineNumber = 0

    init(maxLineLength: Int = 64 * 1024, readSize: Int = 256 * 1024) {
        self.maxLineLength = maxLineLength
        self.readSize = readSize
        storage = .allocate(byteCount: maxLineLength + readSize + 1, alignment: 16)
    }

    func deallocate() { storage.deallocate() }

    /// Bytes buffered after the last complete line (a partial line).
    var pendingCount: Int { discarding ? 0 : end - start }

    /// Drops everything buffered, e.g. after the file was truncated.
    mutating func reset(offset: UInt64) {
        start = 0
        end = 0
        discarding = false
        consumedOffset = offset
        lineNumber = 0
    }

    /// Moves the partial line to the front so a whole read fits behind it.
    @inline(__always)
    private mutating func compact() {
        if start > 0 {
            let pending = end - start
            if pending > 0 { memmove(storage.baseAddress!, storage.baseAddress! + start, pending) }
            start = 0
            end = pending
        }
    }

    /// Decompresses once from `gzip`; returns the number of bytes made (0 at its end).
    mutating func fill(from gzip: GzipStream) throws(SourceError) -> Int {
        compact()
        let n = try gzip.read(into: storage.baseAddress! + end, count: min(storage.count - 1 - end, readSize))
        end += n
        return n
    }

    /// Reads once from `fd`; returns the number of bytes read (0 at end of file).
    mutating func fill(from fd: Int32) throws(SourceError) -> Int {
        compact()
        let room = storage.count - 1 - end
        while true {
            let n = Glibc.read(fd, storage.baseAddress! + end, min(room, readSize))
            if n >= 0 {
                end += n
                return n
            }
            if errno == EINTR { continue }
            throw SourceError.io(path: nil, operation: "read", errno: errno)
        }
    }

    /// Hands out each complete line (without its newline) with the file offset
    /// just after it.
    mutating func drainLines(_ visit: (UnsafeRawBufferPointer, UInt64, Int) throws -> Void) rethrows {
        let base = storage.baseAddress!
        while start < end {
            let remaining = end - start
            guard let nl = memchr(base + start, 0x0A, remaining) else {
                if discarding {
                    consumedOffset += UInt64(remaining)
                    start = end
                } else if remaining > maxLineLength {
                    // Too long to be a log line: skip it up to its newline.
                    skips.longLines += 1
                    discarding = true
                    consumedOffset += UInt64(remaining)
                    start = end
                }
                return
            }
            let lineEnd = base.distance(to: UnsafeMutableRawPointer(nl))
            let length = lineEnd - start
            let lineStart = start
            start = lineEnd + 1
            consumedOffset += UInt64(length + 1)
            lineNumber += 1
            if discarding {
                discarding = false
                continue
            }
            if length > maxLineLength {
                skips.longLines += 1
                continue
            }
            var line = UnsafeRawBufferPointer(start: base + lineStart, count: length)
            if length > 0, line[length - 1] == 0x0D {
                line = UnsafeRawBufferPointer(start: base + lineStart, count: length - 1)
            }
            if line.count > 0, memchr(line.baseAddress!, 0, line.count) != nil {
                skips.binaryLines += 1
                continue
            }
            try visit(line, consumedOffset, lineNumber)
        }
    }

    /// Hands out a partial last line as if it were complete (end of a batch input).
    mutating func flushPartial(_ visit: (UnsafeRawBufferPointer, UInt64, Int) throws -> Void) rethrows {
        if discarding || start == end {
            start = end
            discarding = false
            return
        }
        let line = UnsafeRawBufferPointer(start: storage.baseAddress! + start, count: end - start)
        consumedOffset += UInt64(end - start)
        start = end
        lineNumber += 1
        if line.count > 0, memchr(line.baseAddress!, 0, line.count) != nil {
            skips.binaryLines += 1
            return
        }
        try visit(line, consumedOffset, lineNumber)
    }
}

/// An error from a log source, with what it was doing and where.
public enum SourceError: Error, CustomStringConvertible, Equatable {
    case io(path: String?, operation: String, errno: Int32)
    case journal(operation: String, code: Int32)
    case invalidPosition(String)

    public var description: String {
        switch self {
        case .io(let path, let operation, let code):
            let message = String(cString: strerror(code))
            return path.map { "\($0): \(operation): \(message)" } ?? "\(operation): \(message)"
        case .journal(let operation, let code):
            return "journal: \(operation): \(String(cString: strerror(-code)))"
        case .invalidPosition(let text):
            return "invalid saved position: \(text)"
        }
    }
}
