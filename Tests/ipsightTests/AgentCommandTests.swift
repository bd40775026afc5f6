import Agent
import IPSightCore
import Foundation
import Testing

/// `ipsight config check` and `ipsight run` as a user runs them.
@Suite struct AgentCommandTests {
    static func write(_ text: String, to path: String, append: Bool = false) throws {
        if append, let handle = FileHandle(forWritingAtPath: path) {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try handle.close()
        } else {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }

    @Test func configCheckNamesLineAndKey() throws {
        let dir = CommandLineTests.work + "/config-check"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let good = try CommandLineTests.ipsight(["config", "check", CommandLineTests.root + "/deploy/ipsight.conf"])
        #expect(good.status == 0, "\(good.err)")
        #expect(good.out.contains("ok"))
        try Self.write("[agent]\nentity = user\n\n[cold_start]\nmin_logins = many\n", to: dir + "/bad.conf")
        let bad = try CommandLineTests.ipsight(["config", "check", dir + "/bad.conf"])
        #expect(bad.status == 1)
        #expect(bad.err.contains("bad.conf:5: cold_start.min_logins: expected a whole number"), "\(bad.err)")
    }

    @Test func runAlertsOnUnrelatedNetworksAndResumes() throws {
        let dir = CommandLineTests.work + "/agent-run"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = """
            [agent]
            state_dir = \(dir)/state
            model = \(CommandLineTests.model)
            rules = \(CommandLineTests.root)/rules
            [sources]
            journal = false
            files = \(dir)/auth.log
            follow = false
            utc = true
            [retrain]
            retention = 3650d
            [api]
            socket = \(dir)/state/api.sock
            """
        try Self.write(config, to: dir + "/agent.conf")
        // The model knows user0..user59, each at home in 10.U.0.0/16.
        var usual = ""
        for k in 0..<300 {
            let u = k % 30
            usual += "Nov  4 10:\(k % 60 < 10 ? "0" : "")\(k % 60):00 host sshd[1]: Accepted password for user\(u) from 10.\(u).\(k % 4).\(k % 200 + 1) port 22 ssh2\n"
        }
        try Self.write(usual, to: dir + "/auth.log")
        let first = try CommandLineTests.ipsight(["run", "--config", dir + "/agent.conf"])
        #expect(first.status == 0, "\(first.err)")
        #expect(first.out.isEmpty)
        #expect(first.err.contains("<5>stopped after 300 login events, 0 alerts"), "\(first.err)")

        try Self.write("""
            Nov  4 11:00:00 host sshd[1]: Accepted password for user3 from 10.3.1.77 port 22 ssh2
            Nov  4 11:01:00 host sshd[1]: Accepted publickey for user4 from 203.0.113.9 port 22 ssh2

            """, to: dir + "/auth.log", append: true)
        let second = try CommandLineTests.ipsight(["run", "--config", dir + "/agent.conf"])
        #expect(second.status == 0, "\(second.err)")
        #expect(second.err.contains("stopped after 2 login events, 1 alerts"), "\(second.err)")
        let lines = second.out.split(separator: "\n")
        #expect(lines.count == 1)
        let alert = try #require(JSONSerialization.jsonObject(with: Data((lines.first ?? "{}").utf8)) as? [String: Any])
        #expect((alert["user"] as? [String: Any])?["name"] as? String == "user4")
        #expect((alert["source"] as? [String: Any])?["ip"] as? String == "203.0.113.9")
        #expect((alert["event"] as? [String: Any])?["kind"] as? String == "alert")

        let safe = try CommandLineTests.ipsight(["feedback", "safe", "--config", dir + "/agent.conf", "user4", "203.0.113.9"])
        #expect(safe.status == 0 && safe.out.contains("1 login of user4 from 203.0.113.9 marked safe"), "\(safe.out)\(safe.err)")
        let again = try CommandLineTests.ipsight(["feedback", "safe", "--config", dir + "/agent.conf", "user4", "203.0.113.9"])
        #expect(again.out.hasPrefix("user4 from 203.0.113.9 is already in the history"), "\(again.out)")
        // Not theirs after all: out of the history again, and the next run alerts on it.
        let compromised = try CommandLineTests.ipsight(["feedback", "compromised", "--config", dir + "/agent.conf", "user4", "203.0.113.9"])
        #expect(compromised.out.hasPrefix("1 login of user4 from 203.0.113.9 marked compromised"), "\(compromised.out)\(compromised.err)")
        let store = try ObservationStore(path: dir + "/state/ipsight.db")
        #expect(try store.learnedCount(user: "user4", ip: "203.0.113.9") == 0)
    }

    /// One-off runs of the agent with logrotate (compress) between them: the rest
    /// of the file it stopped in is read from the `.gz`; a rotated file deleted
    /// before the next run is a warning in the agent's log, once.
    @Test func runResumesThroughRotationAndWarnsOfLostLines() throws {
        let dir = CommandLineTests.work + "/agent-rotation"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/logs", withIntermediateDirectories: true)
        let log = dir + "/logs/auth.log"
        try Self.write("""
            [agent]
            state_dir = \(dir)/state
            model = \(CommandLineTests.model)
            rules = \(CommandLineTests.root)/rules
            [sources]
            journal = false
            files = \(log)
            follow = false
            utc = true
            [retrain]
            retention = 3650d
            [api]
            socket = \(dir)/state/api.sock
            """, to: dir + "/agent.conf")
        try Self.write("\"\(log)\" {\n rotate 5\n create\n compress\n}\n", to: dir + "/logrotate.conf")
        var minute = 0
        func logins(_ count: Int) -> String {
            var text = ""
            for _ in 0..<count {
                let u = minute % 30
                text += "Nov  4 1\(minute / 60 % 10):\(minute % 60 < 10 ? "0" : "")\(minute % 60):00 host sshd[1]: "
                    + "Accepted password for user\(u) from 10.\(u).\(minute % 4).\(minute % 200 + 1) port 22 ssh2\n"
                minute += 1
            }
            return text
        }
        func logrotate() throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/logrotate")
            process.arguments = ["-s", dir + "/logrotate.state", "-f", dir + "/logrotate.conf"]
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "logrotate (Debian package logrotate) failed")
        }
        try Self.write(logins(100), to: log)
        let first = try CommandLineTests.ipsight(["run", "--config", dir + "/agent.conf"])
        #expect(first.err.contains("stopped after 100 login events"), "\(first.err)")

        // 20 more, then rotated into auth.log.1.gz, then 10 in the new file.
        try Self.write(logins(20), to: log, append: true)
        try logrotate()
        try Self.write(logins(10), to: log, append: true)
        #expect(FileManager.default.fileExists(atPath: log + ".1.gz"))
        let second = try CommandLineTests.ipsight(["run", "--config", dir + "/agent.conf"])
        #expect(second.err.contains("stopped after 30 login events"), "\(second.err)")
        #expect(!second.err.contains("lines lost"), "\(second.err)")

        // 5 more, rotated, and the rotated file deleted before the agent runs again.
        try Self.write(logins(5), to: log, append: true)
        try logrotate()
        #expect(unlink(log + ".1.gz") == 0)
        try Self.write(logins(3), to: log, append: true)
        let third = try CommandLineTests.ipsight(["run", "--config", dir + "/agent.conf"])
        #expect(third.status == 0, "\(third.err)")
        #expect(third.err.contains("stopped after 3 login events"), "\(third.err)")
        let warnings = third.err.split(separator: "\n").filter { $0.hasPrefix("<4>lines lost: \(log): ") }
        #expect(warnings.count == 1, "\(third.err)")
        #expect(warnings.first?.contains("no longer beside it") == true, "\(third.err)")
    }
}
