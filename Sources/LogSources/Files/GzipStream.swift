#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CZlib

/// Decompresses a gzip file (logrotate's `compress`) from a descriptor in
/// bounded steps, so a rotated `.gz` is read like any other file.
///
/// Several members one after another are one stream (as `gzip -d` reads them);
/// bytes after the last member that do not start another one are ignored, as
/// gzip does. Corrupt or cut-off data ends the stream and is kept in `failure`
/// for the caller to report: never a crash, never an endless loop.
final class GzipStream {
    private let fd: Int32
    private var stream = z_stream()
    private let input: UnsafeMutableRawBufferPointer
    private var inputEnded = false
    private var memberEnded = false
    private var finished = false
    /// Decompressed bytes handed out (or skipped) so far.
    private(set) var produced: UInt64 = 0
    /// Why the stream ended before its data did, if it did.
    private(set) var failure: String?

    /// Reads from `fd`'s current offset; nil if zlib cannot start.
    init?(fd: Int32) {
        self.fd = fd
        // 15 + 16: a 32 KiB window, gzip header and trailer only.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        input = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    /// True when `bytes` start like gzip data (the magic number and deflate).
    static func isGzip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0x1F && bytes[1] == 0x8B && bytes[2] == 8
    }

    /// Decompresses up to `count` bytes into `destination`; 0 at the end of the
    /// data (or at a failure, then `failure` says what).
    func read(into destination: UnsafeMutableRawPointer, count: Int) throws(SourceError) -> Int {
        guard count > 0 else { return 0 }
        while !finished {
            if stream.avail_in == 0 && !inputEnded { try refill() }
            if memberEnded {
                // Another member may follow; anything else after a member is ignored.
                if stream.avail_in == 0 {
                    finished = true
                    break
                }
                if stream.avail_in < 3 && !inputEnded {
                    try refill()
                    continue
                }
                let next = UnsafeRawBufferPointer(start: stream.next_in, count: Int(stream.avail_in))
                guard Self.isGzip(next) else {
                    finished = true
                    break
                }
                inflateReset(&stream)
                memberEnded = false
            }
            if stream.avail_in == 0 && inputEnded {
                failure = "the gzip data ends early (cut off)"
                finished = true
                break
            }
            stream.next_out = destination.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(min(count, Int(UInt32.max)))
            let status = inflate(&stream, Z_NO_FLUSH)
            let made = count - Int(stream.avail_out)
            produced += UInt64(made)
            switch status {
            case Z_STREAM_END:
                memberEnded = true
            case Z_OK, Z_BUF_ERROR:
                // No progress with input and room left would loop forever: call it corrupt.
                if made == 0 && stream.avail_in > 0 && status == Z_BUF_ERROR {
                    failure = "corrupt gzip data (no progress)"
                    finished = true
                }
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                failure = "corrupt gzip data (\(reason))"
                finished = true
            }
            if made > 0 { return made }
        }
        return 0
    }

    /// Decompresses and drops up to `budget` bytes of the `remaining` to skip;
    /// false when the data ended first.
    func skip(_ remaining: inout UInt64, budget: Int) throws(SourceError) -> Bool {
        let scratchSize = 64 * 1024
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 16)
        defer { scratch.deallocate() }
        var left = budget
        while remaining > 0 && left > 0 {
            let n = try read(into: scratch, count: Int(min(remaining, UInt64(min(scratchSize, left)))))
            if n == 0 { return false }
            remaining -= UInt64(n)
            left -= n
        }
        return true
    }

    private func refill() throws(SourceError) {
        if stream.avail_in > 0 {
            // Keep the unread bytes at the front.
            memmove(input.baseAddress!, stream.next_in, Int(stream.avail_in))
        }
        let kept = Int(stream.avail_in)
        while true {
            let n = Glibc.read(fd, input.baseAddress! + kept, input.count - kept)
            if n < 0 {
                if errno == EINTR { continue }
                throw SourceError.io(path: nil, operation: "read", errno: errno)
            }
            if n == 0 { inputEnded = true }
            stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_in = UInt32(kept + n)
            return
        }
    }

    /// The hash of the first line of the gzip file at `fd` (read with pread, so
    /// the descriptor's offset is untouched), like `FileFollower`'s for plain
    /// files; nil without a complete first line.
    static func firstLineHash(fd: Int32) -> UInt64? {
        let limit = 1024
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var input = [UInt8](repeating: 0, count: 4096)
        var output = [UInt8](repeating: 0, count: limit)
        var offset: off_t = 0
        var made = 0
        return output.withUnsafeMutableBytes { out -> UInt64? in
            input.withUnsafeMutableBytes { inp -> UInt64? in
                // The first line is at most 1 KiB; 64 KiB of compressed input is plenty.
                while made < limit && offset < 64 * 1024 {
                    let n = pread(fd, inp.baseAddress, inp.count, offset)
                    if n <= 0 { break }
                    offset += off_t(n)
                    stream.next_in = inp.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    stream.avail_in = UInt32(n)
                    var ended = false
                    while stream.avail_in > 0 && made < limit {
                        stream.next_out = (out.baseAddress! + made).assumingMemoryBound(to: Bytef.self)
                        stream.avail_out = UInt32(limit - made)
                        let status = inflate(&stream, Z_NO_FLUSH)
                        made = limit - Int(stream.avail_out)
                        if status == Z_STREAM_END { ended = true; break }
                        if status != Z_OK { ended = true; break }
                    }
                    if ended { break }
                }
                let bytes = UnsafeRawBufferPointer(rebasing: out[0..<made])
                if let nl = bytes.firstIndex(of: 0x0A) {
                    return FileFollower.fnv1a(UnsafeRawBufferPointer(rebasing: bytes[0..<nl]))
                }
                return made == limit ? FileFollower.fnv1a(bytes) : nil
            }
        }
    }
}
