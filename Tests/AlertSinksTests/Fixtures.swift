import IPSightCore
import Foundation
import TestSupport
import Glibc
@testable import AlertSinks

/// The package root, from this file's path (Tests/AlertSinksTests/Fixtures.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let sharedDirectory = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")

func sampleAlert(_ n: Int = 1, user: String = "alice", ip: String = "203.0.113.9", host: String? = "bastion-1") -> Alert {
    Alert(id: "evt-\(n)-\(user)-\(ip)", time: 1_763_884_800.25 + Double(n), host: host, service: "sshd", outcome: .success,
          user: user, ip: ip, decision: .alert, severity: .critical, risk: 0.987, dotProduct: -3.25,
          summary: "\(user) logged in to sshd from \(ip): new network for this user",
          reasons: [("score", "0.987 > threshold 0.95"), ("nearest_known", "198.51.100.0/24")])
}

/// A fresh directory under /tmp, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ipsight-alerts-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Writes `value` to a file and returns a `file:` secret for it.
func secretFile(_ value: String, in directory: URL, name: String = "secret") throws -> Secret {
    let url = directory.appendingPathComponent(name)
    try (value + "\n").write(to: url, atomically: true, encoding: .utf8)
    return try Secret("file:\(url.path)")
}

func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    return withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

struct ReceiverError: Error, CustomStringConvertible {
    var description: String
}

/// `../shared/bench/webhook_sink.py` on 127.0.0.1 as a subprocess, recording requests to a file.
final class WebhookReceiver {
    let port: Int
    let output: URL
    private let process = Process()

    init(directory: URL, secret: String? = nil, failFirst: Int = 0, failStatus: Int = 503, delayMilliseconds: Int = 0,
         port: Int = freePort()) throws {
        self.port = port
        output = directory.appendingPathComponent("received-\(port)-\(UUID().uuidString.prefix(8)).jsonl")
        let script = sharedDirectory.appendingPathComponent("bench/webhook_sink.py")
        guard FileManager.default.fileExists(atPath: script.path) else {
            throw ReceiverError(description: "receiver script not found at \(script.path)")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        var arguments = [script.path, "--port", String(port), "--out", output.path,
                         "--fail-first", String(failFirst), "--fail-status", String(failStatus),
                         "--delay-ms", String(delayMilliseconds)]
        if let secret { arguments += ["--secret", secret] }
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        guard waitUntil(seconds: 15, { canConnect(port: port) }) else {
            stop()
            throw ReceiverError(description: "receiver did not listen on 127.0.0.1:\(port) within 15 s")
        }
    }

    var url: String { "http://127.0.0.1:\(port)/hook" }

    /// Every request recorded so far, parsed.
    func records() -> [JSONValue] {
        guard let text = try? String(contentsOf: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONValue.parse(String($0)) }
    }

    func accepted() -> [JSONValue] { records().filter { $0["status"]?.numberValue == 200 } }

    func stop() {
        guard process.isRunning else { return }
        // SIGKILL: under the test runner SIGTERM did not end the child (from a shell it
        // does at once). Nothing is lost: the receiver writes each record, line-buffered,
        // before it answers.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}
