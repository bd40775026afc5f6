#if canImport(Glibc)
import Glibc
#endif

/// Output helpers: results go to standard output, messages and progress to
/// standard error, and progress bars only when standard error is a terminal.
enum Console {
    static let isTerminal = isatty(2) == 1

    static func error(_ message: String) {
        FileHandleOut.standardError.write(message + "\n")
    }

    static func progress(_ label: String, done: Int, total: Int) {
        guard isTerminal, total > 0 else { return }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandleOut.standardError.write("\r\(label) [\(bar)] \(done)/\(total)")
        if done >= total { FileHandleOut.standardError.write("\r\u{1B}[K") }
    }

    static func grouped(_ value: Double) -> String {
        let n = Int(value.rounded())
        var digits = Array(String(abs(n)))
        var out: [Character] = []
        while digits.count > 3 {
            out.insert(contentsOf: [","] + digits.suffix(3), at: 0)
            digits.removeLast(3)
        }
        out.insert(contentsOf: digits, at: 0)
        return (n < 0 ? "-" : "") + String(out)
    }

    static func fixed(_ value: Double, _ places: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        var text = "\(rounded)"
        if let dot = text.firstIndex(of: ".") {
            let decimals = text.distance(from: dot, to: text.endIndex) - 1
            if decimals < places { text += String(repeating: "0", count: places - decimals) }
        } else if places > 0 {
            text += "." + String(repeating: "0", count: places)
        }
        return text
    }
}

/// Unbuffered-enough writers on file descriptors (stdout is block-buffered by us).
final class FileHandleOut: @unchecked Sendable {
    static let standardError = FileHandleOut(fd: 2, bufferSize: 0)
    static let standardOutput = FileHandleOut(fd: 1, bufferSize: 1 << 16)

    let fd: Int32
    var buffer: [UInt8] = []
    let bufferSize: Int

    init(fd: Int32, bufferSize: Int) {
        self.fd = fd
        self.bufferSize = bufferSize
        buffer.reserveCapacity(bufferSize)
    }

    func write(_ text: String) {
        var copy = text
        copy.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        if bufferSize == 0 { writeAll(bytes); return }
        if buffer.count + bytes.count > bufferSize { flush() }
        if bytes.count >= bufferSize { writeAll(bytes); return }
        buffer.append(contentsOf: bytes)
    }

    func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { write($0) }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            done += n
        }
    }
}
