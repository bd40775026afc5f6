import IPSightCore
import Foundation
import Testing

/// The agent as a process, following a log file, with `ipsight check`, `status`
/// and the HTTP API talking to it over its socket and loopback TCP.
@Suite(.serialized) struct AgentProcessTests {
    /// A running `ipsight run`; stopped with SIGTERM.
    final class Agent {
        let process = Process()
        let errPath: String

        init(config: String, dir: String, verbose: Bool = false) throws {
            errPath = dir + "/agent.err"
            FileManager.default.createFile(atPath: errPath, contents: nil)
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = ["run", "--config", config] + (verbose ? ["--verbose"] : [])
            process.standardOutput = FileHandle(forWritingAtPath: dir + "/alerts.out") ?? FileHandle.nullDevice
            process.standardError = FileHandle(forWritingAtPath: errPath)
            try process.run()
        }

        var log: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

        /// SIGTERM, then the exit status (nil if it did not exit within `seconds`).
        func terminate(within seconds: Double = 10) -> Int32? {
            process.terminate()
            let deadline = Date(timeIntervalSinceNow: seconds)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL); return nil }
            return process.terminationStatus
        }
    }

    static func line(_ minute: Int, _ user: String, _ ip: String) -> String {
        "Nov  4 1\(minute / 60):\(minute % 60 < 10 ? "0" : "")\(minute % 60):00 host sshd[1]: Accepted password for \(user) from \(ip) port 22 ssh2\n"
    }

    /// Polls `ipsight status --json` until `done` holds.
    static func status(_ socket: String, until done: ([String: Any]) -> Bool) throws -> [String: Any] {
        var last: [String: Any] = [:]
        for _ in 0..<300 {
            let run = try CommandLineTests.ipsight(["status", "--json", "--socket", socket])
            if run.status == 0, let value = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as? [String: Any] {
                last = value
                if done(value) { return value }
            }
            usleep(100_000)
        }
        Issue.record("status never reached the expected state: \(last)")
        return last
    }

    @Test func checkExitCodesWithTheAgentUpAndDown() throws {
        let dir = CommandLineTests.work + "/agent-api"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let socket = dir + "/state/api.sock"
        func config(follow: Bool) -> String {
            """
            [agent]
            state_dir = \(dir)/state
            model = \(CommandLineTests.model)
            rules = \(CommandLineTests.root)/rules
            [sources]
            journal = false
            files = \(dir)/auth.log
            follow = \(follow)
            utc = true
            [retrain]
            retention = 3650d
            [api]
            socket = \(socket)
            listen = 127.0.0.1:0
            token_file = \(dir)/api.token
            """
        }
        try AgentCommandTests.write("s3cret\n", to: dir + "/api.token")
        try AgentCommandTests.write(config(follow: false), to: dir + "/learn.conf")
        try AgentCommandTests.write(config(follow: true), to: dir + "/agent.conf")
        var usual = ""
        for k in 0..<300 { usual += Self.line(k % 60, "user\(k % 30)", "10.\(k % 30).\(k % 4).\(k % 200 + 1)") }
        try AgentCommandTests.write(usual, to: dir + "/auth.log")
        // A one-off run learns the history; the followed run calibrates on it at start.
        let learn = try CommandLineTests.ipsight(["run", "--config", dir + "/learn.conf"])
        #expect(learn.status == 0, "\(learn.err)")

        let agent = try Agent(config: dir + "/agent.conf", dir: dir)
        defer { if agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) } }
        _ = try Self.status(socket) { ($0["model"] as? [String: Any])?["calibrated"] as? Bool == true }

        let home = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", "user3", "--ip", "10.3.1.77"])
        #expect(home.status == 0, "\(home.out)\(home.err)")
        #expect(home.out.hasPrefix("allow: user3 logged in to sshd from 10.3.1.77"), "\(home.out)")
        let away = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", "user4", "--ip", "203.0.113.9"])
        #expect(away.status == 20, "\(away.out)\(away.err)")
        #expect(away.out.hasPrefix("alert: "), "\(away.out)")
        let newcomer = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", "somebody-new", "--ip", "203.0.113.9", "--quiet"])
        // A new account from a network neither it nor any other account uses: stepped up.
        #expect(newcomer.status == 10 && newcomer.out.isEmpty, "a cold account from an unfamiliar network: \(newcomer.out)")
        let pam = try runWithEnvironment(["check", "--pam", "--socket", socket],
                                         ["PAM_USER": "user4", "PAM_RHOST": "203.0.113.9", "PAM_SERVICE": "sshd"])
        #expect(pam == 20)
        let console = try runWithEnvironment(["check", "--pam", "--socket", socket], ["PAM_USER": "user4", "PAM_SERVICE": "login"])
        #expect(console == 0, "no remote host: a local login")

        // The same API over TCP, answering for the same agent.
        let state = try Self.status(socket) { (($0["decisions"] as? [String: Any])?["api/alert"] as? Int ?? 0) >= 2 }
        #expect((state["decisions"] as? [String: Any])?["api/allow"] as? Int == 1, "\(state)")
        let address = try #require(agent.log.range(of: "http://127.0.0.1:"), "\(agent.log)")
        let port = try #require(Int(agent.log[address.upperBound...].prefix(while: \.isNumber)))
        let tcp = try CommandLineTests.ipsight(["check", "--url", "127.0.0.1:\(port)", "--token-file", dir + "/api.token", "--user", "user4", "--ip", "203.0.113.9"])
        #expect(tcp.status == 20, "\(tcp.out)\(tcp.err)")

        // Feedback reaches the running agent through its API.
        let safe = try CommandLineTests.ipsight(["feedback", "safe", "--socket", socket, "user4", "203.0.113.9"])
        #expect(safe.status == 0 && safe.out == "a login of user4 from 203.0.113.9 added as safe; the running agent uses it now\n",
                "\(safe.out)\(safe.err)")

        // Garbage and a 1 MB line in the followed file: the agent keeps going.
        var junk = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) })
        junk.append(Data(String(repeating: "A", count: 1 << 20).utf8))
        junk.append(Data("\n".utf8))
        let handle = try #require(FileHandle(forWritingAtPath: dir + "/auth.log"))
        handle.seekToEndOfFile()
        handle.write(junk)
        handle.write(Data(Self.line(30, "user5", "10.5.2.9").utf8))
        try handle.close()
        _ = try Self.status(socket) { $0["login_events"] as? Int == 1 }

        let stopping = Date()
        #expect(agent.terminate() == 0, "\(agent.log)")
        #expect(Date().timeIntervalSince(stopping) < 5, "SIGTERM ends the agent within 5 s")
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed on exit")
        // With the agent down, the same feedback goes to its store.
        let compromised = try CommandLineTests.ipsight(["feedback", "compromised", "--socket", socket, "--config", dir + "/agent.conf",
                                                        "user4", "203.0.113.9"])
        #expect(compromised.status == 0 && compromised.out.hasPrefix("1 login of user4 from 203.0.113.9 marked compromised in \(dir)/state/"),
                "\(compromised.out)\(compromised.err)")
        let openFail = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", "user4", "--ip", "203.0.113.9"])
        #expect(openFail.status == 0, "fails open by default")
        #expect(openFail.err.contains("cannot reach the agent at unix:\(socket)"), "\(openFail.err)")
        let closedFail = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", "user4", "--ip", "203.0.113.9",
                                                      "--when-down", "challenge"])
        #expect(closedFail.status == 10)
        let down = try CommandLineTests.ipsight(["status", "--socket", socket])
        #expect(down.status == 1 && down.err.contains("is `ipsight run` running?"), "\(down.err)")
    }

    private func runWithEnvironment(_ arguments: [String], _ environment: [String: String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
