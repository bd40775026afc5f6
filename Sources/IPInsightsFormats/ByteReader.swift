import CZlib
import Glibc

/// Reads a file or standard input as lines of bytes, transparently inflating gzip
/// (detected by its magic bytes, any number of members). Lines end at `\n`; a
/// trailing `\r` is dropped. A line longer than `maximumLineLength` is handed over
/// truncated with `truncated = true` rather than held whole, so memory stays bounded.
public final class ByteLineReader {
    public struct Line {
        public var bytes: UnsafeRawBufferPointer
        public var number: Int
        public var truncated: Bool
    }

    let fd: Int32
    let ownsDescriptor: Bool
    let maximumLineLength: Int
    public let path: String

    public init(path: String?, maximumLineLength: Int = 1 << 20) throws(InputError) {
        self.maximumLineLength = maximumLineLength
        if let path, path != "-" {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw InputError(path: path, line: nil, message: String(cString: strerror(errno))) }
            self.fd = fd
            self.ownsDescriptor = true
            self.path = path
        } else {
            fd = 0
            ownsDescriptor = false
            self.path = "<stdin>"
        }
    }

    deinit { if ownsDescriptor { close(fd) } }

    /// Calls `body` for every line; stops early when `body` returns false.
    public func forEachLine(_ body: (Line) throws -> Bool) throws {
        var raw = [UInt8](repeating: 0, count: 1 << 20)
        var first = true
        var inflater: Inflater? = nil
        var pending = [UInt8]()          // the start of a line that crosses a chunk
        pending.reserveCapacity(4096)
        var pendingTruncated = false
        var lineNumber = 0
        var stop = false

        func emit(_ chunk: UnsafeRawBufferPointer) throws {
            var start = 0
            let n = chunk.count
            while start < n, !stop {
                guard let nl = memchr(chunk.baseAddress! + start, 0x0A, n - start) else {
                    let room = maximumLineLength - pending.count
                    if room > 0 { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<min(n, start + room)])) }
                    if n - start > room { pendingTruncated = true }
                    return
                }
                let end = UnsafeRawPointer(nl) - chunk.baseAddress!
                lineNumber += 1
                if pending.isEmpty && !pendingTruncated {
                    var e = end
                    if e > start, chunk[e - 1] == 0x0D { e -= 1 }
                    let truncated = e - start > maximumLineLength
                    let slice = UnsafeRawBufferPointer(rebasing: chunk[start..<(truncated ? start + maximumLineLength : e)])
                    if try !body(Line(bytes: slice, number: lineNumber, truncated: truncated)) { stop = true }
                } else {
                    let room = maximumLineLength - pending.count
                    if room > 0 { pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[start..<min(end, start + room)])) }
                    if end - start > room { pendingTruncated = true }
                    if pending.last == 0x0D { pending.removeLast() }
                    let truncated = pendingTruncated
                    let ok = try pending.withUnsafeBytes { try body(Line(bytes: $0, number: lineNumber, truncated: truncated)) }
                    if !ok { stop = true }
                    pending.removeAll(keepingCapacity: true)
                    pendingTruncated = false
                }
                start = end + 1
            }
        }

        while !stop {
            let got = raw.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if got < 0 {
                if errno == EINTR { continue }
                throw InputError(path: path, line: lineNumber, message: String(cString: strerror(errno)))
            }
            if got == 0 { break }
            if first {
                first = false
                if got >= 2, raw[0] == 0x1F, raw[1] == 0x8B { inflater = try Inflater(path: path) }
            }
            if let inflater {
                try raw.withUnsafeBytes { buffer in
                    try inflater.inflate(UnsafeRawBufferPointer(rebasing: buffer[0..<got]), lineNumber: lineNumber) { try emit($0) }
                }
            } else {
                try raw.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
            }
        }
        if let inflater, !stop, !inflater.finished {
            throw InputError(path: path, line: lineNumber, message: "gzip stream ends early (truncated file)")
        }
        if !stop, !pending.isEmpty || pendingTruncated {
            lineNumber += 1
            if pending.last == 0x0D { pending.removeLast() }
            let truncated = pendingTruncated
            _ = try pending.withUnsafeBytes { try body(Line(bytes: $0, number: lineNumber, truncated: truncated)) }
        }
    }
}

/// A problem with an input file, with where it is.
public struct InputError: Error, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String
    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }
    public var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}

/// zlib inflation of gzip members, one after another.
final class Inflater {
    var stream = z_stream()
    var out = [UInt8](repeating: 0, count: 1 << 20)
    var finished = false
    let path: String

    init(path: String) throws(InputError) {
        self.path = path
        // 15 + 32: a window of 32 KiB, gzip or zlib header detected automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw InputError(path: path, line: nil, message: "cannot start gzip decompression")
        }
    }

    deinit { inflateEnd(&stream) }

    func inflate(_ input: UnsafeRawBufferPointer, lineNumber: Int, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = UInt32(input.count)
        while stream.avail_in > 0 {
            if finished {
                // Another gzip member follows the previous one.
                inflateReset(&stream)
                finished = false
            }
            let produced: Int = try out.withUnsafeMutableBytes { buffer in
                stream.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_out = UInt32(buffer.count)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                if status == Z_STREAM_END {
                    finished = true
                } else if status != Z_OK && status != Z_BUF_ERROR {
                    let reason = stream.msg.map { String(cString: $0) } ?? "status \(status)"
                    throw InputError(path: path, line: lineNumber, message: "corrupt gzip data: \(reason)")
                }
                return buffer.count - Int(stream.avail_out)
            }
            if produced > 0 {
                try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
            } else if !finished && stream.avail_in > 0 && stream.avail_out > 0 {
                throw InputError(path: path, line: lineNumber, message: "corrupt gzip data")
            }
        }
    }
}
