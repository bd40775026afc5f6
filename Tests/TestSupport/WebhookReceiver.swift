import Foundation

/// `shared/bench/webhook_sink.py` as a subprocess on 127.0.0.1: records each POST
/// as a JSON line and checks Standard Webhooks signatures with `secret`.
public final class WebhookReceiver {
    public let port: Int
    public let output: String
    private let process = Process()

    public init(port: Int, output: String, secret: String, failFirst: Int = 0) throws {
        self.port = port
        self.output = output
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [PackagePaths.bench + "/webhook_sink.py", "--port", String(port), "--out", output,
                             "--secret", secret, "--fail-first", String(failFirst)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline, !Self.listening(port) { usleep(50_000) }
        guard Self.listening(port) else {
            stop()
            throw SupportError("webhook_sink.py did not listen on 127.0.0.1:\(port)")
        }
    }

    public static func listening(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// A loopback TCP port nobody listens on now (the kernel's choice for port 0).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        return bound ? Int(UInt16(bigEndian: address.sin_port)) : 20_000 + Int(getpid() % 20_000)
    }

    /// Every request received so far, as webhook_sink.py recorded it.
    public func records() -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The alerts received (the `data` of each Standard Webhooks envelope).
    public func alerts() -> [[String: Any]] {
        records().compactMap { ($0["body"] as? [String: Any])?["data"] as? [String: Any] }
    }

    /// Waits until `done` holds for the records, or the deadline passes.
    @discardableResult
    public func wait(seconds: Double = 30, until done: ([[String: Any]]) -> Bool) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = records()
        while !done(seen) && Date() < deadline {
            usleep(100_000)
            seen = records()
        }
        return seen
    }

    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    deinit { stop() }
}
