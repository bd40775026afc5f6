import IPSightCore
import Foundation
import Hummingbird
import HummingbirdTesting
import IPInsights
import Testing

/// `ipsight serve` as an operator runs it: the built binary, a real port, real signals.
@Suite(.serialized) struct ServeCommandTests {
    static let binary: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/.build/debug/ipsight"
    }()

    /// Collects a pipe's output on a background thread.
    final class Output: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ more: Data) { lock.withLock { data.append(more) } }
        var text: String { lock.withLock { String(decoding: data, as: UTF8.self) } }
    }

    static func start(_ arguments: [String]) throws -> (Process, Output) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        let output = Output()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in output.append(handle.availableData) }
        try process.run()
        return (process, output)
    }

    /// The port in Hummingbird's "listening on 127.0.0.1:PORT" line.
    static func loggedPort(_ text: String) -> Int? {
        guard let range = text.range(of: #"listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) else { return nil }
        return Int(text[range].split(separator: ":").last ?? "")
    }

    /// Waits at most `seconds` for the process to end.
    static func waitForExit(_ process: Process, seconds: Double = 20) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    @Test func servesReloadsOnSIGHUPAndStopsOnSIGTERM() async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build the binary first: swift build")
        let (path, first) = try Support.savedModel(seed: 30)
        defer { unlink(path) }
        let second = try Support.model(seed: 31)
        let (process, output) = try Self.start(["serve", "--model", path, "--port", "0", "--poll-interval", "3600"])
        defer { if process.isRunning { process.terminate() } }

        let body = "entity_id_1, 192.168.1.2\n"
        let expected = { (model: Model) in Double(model.score(entity: "entity_id_1", ip: IPAddress("192.168.1.2")!)) }
        let score = { @Sendable (client: TestClient) async throws -> Double? in
            let response = try await client.post("/invocations", headers: [.contentType: "text/csv", .accept: "application/jsonlines"],
                                                 body: ByteBuffer(string: body))
            guard response.status == .ok, let buffer = response.body else { return nil }
            return try Support.jsonLines(buffer).first?["dot_product"]?.numberValue
        }
        let firstScore = expected(first), secondScore = expected(second)
        let pid = process.processIdentifier
        // The waits and the client's tasks run on the tests' own threads (see `Support.threads`).
        try await withTaskExecutorPreference(Support.threads) {
            // Hummingbird logs the port it bound. Look once more after the deadline:
            // on a busy runner a sleep can outlast it while the port is already there.
            _ = await Support.eventually(within: 60) { Self.loggedPort(output.text) != nil || !process.isRunning }
            let bound = try #require(Self.loggedPort(output.text), "no port in: \(output.text)")
            try await TestClient.withClient(host: "127.0.0.1", port: bound) { client in
                let ping = try await client.get("/ping")
                #expect(ping.status == .ok)
                let before = try await score(client)
                #expect(ReloadTests.near(before, firstScore))
                try ModelFile.save(second, to: path)
                kill(pid, SIGHUP)
                let switched = try await Support.eventually { ReloadTests.near(try await score(client), secondScore) }
                #expect(switched)
            }
        }
        process.terminate()
        #expect(Self.waitForExit(process))
        #expect(output.text.contains("(SIGHUP)"))
    }

    @Test func nonLoopbackAddressNeedsATokenFile() throws {
        let (path, _) = try Support.savedModel(seed: 32)
        defer { unlink(path) }
        let (process, output) = try Self.start(["serve", "--model", path, "--host", "0.0.0.0", "--port", "0"])
        defer { if process.isRunning { process.terminate() } }
        #expect(Self.waitForExit(process))
        #expect(process.terminationStatus != 0)
        #expect(output.text.contains("needs --token-file"))
    }
}
