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
        #expect(again.out.contains("no alerted logins"))
    }
}
