#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AlertSinks
import IPInsightsFormats
import LogSources
import Synchronization

/// The agent's built-in alert output: one ECS-shaped JSON object per alert, on
/// standard output and/or appended to files (fsync'd before `submit` returns, so
/// a submitted alert survives a crash). A batch is one write and one fsync per
/// file. A line torn by a crash mid-write (never acknowledged) is cut off when the
/// file is opened again, so the next line does not run into it.
public final class JSONLinesAlertRouter: AlertRouting, @unchecked Sendable {
    private let descriptors: [(fd: Int32, file: Bool)]
    private let lock = Mutex(())

    /// `outputs`: "stdout" or file paths (created 0640, appended to).
    public init(outputs: [String]) throws(ConfigError) {
        var opened: [(fd: Int32, file: Bool)] = []
        for output in outputs {
            if output == "stdout" {
                opened.append((1, false))
                continue
            }
            // Read and write: the torn-tail check reads the file's last bytes.
            let fd = open(output, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard fd >= 0 else {
                let message = String(cString: strerror(errno))
                for (fd, file) in opened where file { close(fd) }
                throw ConfigError(file: output, line: nil, key: "alerts.output", message: message)
            }
            opened.append((fd, true))
            if let message = JSONLinesAlertRouter.cutTornLine(fd) {
                for (fd, file) in opened where file { close(fd) }
                throw ConfigError(file: output, line: nil, key: "alerts.output", message: message)
            }
        }
        descriptors = opened
    }

    public convenience init(output: String) throws(ConfigError) { try self.init(outputs: [output]) }

    deinit { for (fd, file) in descriptors where file { close(fd) } }

    public func submit(_ alert: Alert) throws {
        try append(ECSDocument.encode(alert))
    }

    /// The batch's lines in one write and one fsync per file.
    public func submit(_ alerts: [Alert]) throws {
        guard !alerts.isEmpty else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(alerts.count * 768)
        for alert in alerts { ECSDocument.append(alert, to: &bytes) }
        try append(bytes)
    }

    private func append(_ bytes: [UInt8]) throws {
        try lock.withLock { _ throws(AlertWriteError) in
            for (fd, file) in descriptors {
                // Where this write starts: a failed write (a full disk) is cut back to it,
                // so no torn line is left for the next one to run into.
                let start = file ? lseek(fd, 0, SEEK_END) : -1
                var offset = 0
                while offset < bytes.count {
                    let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        let message = String(cString: strerror(errno))
                        if start >= 0 { _ = ftruncate(fd, start) }
                        throw AlertWriteError(message: message)
                    }
                    offset += n
                }
                if file && fsync(fd) != 0 {
                    let message = String(cString: strerror(errno))
                    if start >= 0 { _ = ftruncate(fd, start) }
                    throw AlertWriteError(message: "fsync: \(message)")
                }
            }
        }
    }

    /// Cuts a file's last line when it has no newline: the part of a write that a
    /// crash interrupted, which was never acknowledged (its batch is read again and
    /// written whole). Only a tail that looks like one of ours (at most 1 MiB after
    /// the last newline) is cut; anything else gets a newline so the next line starts
    /// clean. Returns an error message, or nil.
    static func cutTornLine(_ fd: Int32) -> String? {
        let end = lseek(fd, 0, SEEK_END)
        guard end > 0 else { return end < 0 ? String(cString: strerror(errno)) : nil }
        var last: UInt8 = 0
        guard pread(fd, &last, 1, end - 1) == 1 else { return "read: \(String(cString: strerror(errno)))" }
        if last == 0x0A { return nil }
        let window = min(end, 1 << 20)
        var tail = [UInt8](repeating: 0, count: Int(window))
        var got = 0
        while got < tail.count {
            let n = tail.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, end - window + off_t(got)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return "read: \(String(cString: strerror(errno)))" }
            got += n
        }
        if let newline = tail.lastIndex(of: 0x0A) {
            guard ftruncate(fd, end - window + off_t(newline) + 1) == 0 else { return "truncate: \(String(cString: strerror(errno)))" }
        } else if window == end {
            // The whole file is one unfinished line: nothing in it was acknowledged.
            guard ftruncate(fd, 0) == 0 else { return "truncate: \(String(cString: strerror(errno)))" }
        } else {
            var newline: UInt8 = 0x0A
            guard write(fd, &newline, 1) == 1 else { return "write: \(String(cString: strerror(errno)))" }
        }
        return fsync(fd) == 0 ? nil : "fsync: \(String(cString: strerror(errno)))"
    }

    /// Everything is written in `submit`; nothing waits.
    public func drain(seconds: Double) {}
}

struct AlertWriteError: Error, CustomStringConvertible {
    var message: String
    var description: String { "alert output: \(message)" }
}
