import Foundation
import Synchronization
import Testing
import TestSupport

/// `ipsight run` as a process with a webhook sink: stopping in time while a receiver
/// hangs, and an alert storm cut short by SIGKILL.
@Suite(.serialized) struct DeliveryProcessTests {
    static func freshDirectory(_ name: String) throws -> String {
        let dir = CommandLineTests.work + "/" + name
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs a Python snippet (the spool is read with Python's own sqlite3) and returns its output.
    static func python(_ code: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", code]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func lineCount(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
    }

    @Test func sigtermWithAHangingReceiverStopsInTimeAndTheAlertIsSentAfterTheNextStart() throws {
        let dir = try Self.freshDirectory("hanging-receiver")
        let release = Atomic<Bool>(false)
        let receiver = try ScriptedWebhookReceiver { _, _ in release.load(ordering: .relaxed) ? .ok : .hang }
        defer { receiver.stop() }
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
            [alerts]
            output = \(dir)/alerts.jsonl
            [sink.soc]
            type = webhook
            url = \(receiver.url)
            timeout = 60
            [api]
            socket = \(socket)
            """
        }
        try AgentCommandTests.write(config(follow: false), to: dir + "/learn.conf")
        try AgentCommandTests.write(config(follow: true), to: dir + "/agent.conf")
        var usual = ""
        for k in 0..<300 { usual += AgentProcessTests.line(k % 60, "user\(k % 30)", "10.\(k % 30).\(k % 4).\(k % 200 + 1)") }
        try AgentCommandTests.write(usual, to: dir + "/auth.log")
        let learn = try CommandLineTests.ipsight(["run", "--config", dir + "/learn.conf"])
        #expect(learn.status == 0, "\(learn.err)")

        let agent = try AgentProcessTests.Agent(config: dir + "/agent.conf", dir: dir)
        defer { if agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) } }
        _ = try AgentProcessTests.status(socket) { ($0["model"] as? [String: Any])?["calibrated"] as? Bool == true }
        try AgentCommandTests.write(AgentProcessTests.line(31, "user4", "203.0.113.9"), to: dir + "/auth.log", append: true)
        let held = receiver.wait(seconds: 30) { !$0.isEmpty }
        try #require(held.count == 1, "the alert reached the receiver: \(agent.log)")

        // The receiver holds the request (the sink's timeout is a minute): the stop
        // must cancel it rather than wait.
        let stopping = Date()
        let status = agent.terminate(within: 20)
        let took = Date().timeIntervalSince(stopping)
        #expect(status == 0, "\(agent.log)")
        #expect(took < 5, "SIGTERM took \(took) s with a hanging receiver")
        #expect(receiver.requests().allSatisfy { $0.status == nil }, "nothing was answered")

        // The next start delivers the alert that was in flight.
        release.store(true, ordering: .relaxed)
        let again = try AgentProcessTests.Agent(config: dir + "/agent.conf", dir: dir)
        defer { if again.process.isRunning { kill(again.process.processIdentifier, SIGKILL) } }
        let delivered = receiver.wait(seconds: 30) { $0.contains { $0.status == 200 } }
        #expect(delivered.filter { $0.status == 200 }.map(\.id) == [held[0].id], "\(again.log)")
        #expect(again.terminate() == 0, "\(again.log)")
    }

    @Test func sigkillDuringAnAlertStormLosesNoAlertAndQueuesNoneTwice() throws {
        let dir = try Self.freshDirectory("alert-storm")
        let chunks = 20, chunk = 1000, logins = chunks * chunk
        try AgentCommandTests.write("", to: dir + "/auth.log")
        // Nothing listens on the sink's port: every alert stays in the spool to be counted.
        let config = """
            [agent]
            state_dir = \(dir)/state
            rules = \(CommandLineTests.root)/rules
            [sources]
            journal = false
            files = \(dir)/auth.log
            follow = true
            utc = true
            [cold_start]
            policy = alert
            min_logins = 1000000
            [retrain]
            retention = 3650d
            bootstrap_min_logins = 100000000
            [alerts]
            output = \(dir)/alerts.jsonl
            [sink.soc]
            type = webhook
            url = http://127.0.0.1:\(freePort())/hook
            timeout = 1
            [api]
            socket = off
            """
        try AgentCommandTests.write(config, to: dir + "/agent.conf")
        let spooled = """
            import sqlite3
            try:
                db = sqlite3.connect("file:\(dir)/state/alerts.sqlite?mode=ro", uri=True)
                print(*db.execute("SELECT count(*), count(DISTINCT alert_id) FROM alert_spool WHERE sink = 'soc'").fetchone())
            except sqlite3.Error:
                print(0, 0)
            """

        // Every login alerts (new accounts, alerted while in cold start); the logins
        // arrive in bursts, and the agent is killed twice in the middle of them.
        var agent = try AgentProcessTests.Agent(config: dir + "/agent.conf", dir: dir)
        defer { if agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) } }
        for c in 0..<chunks {
            var lines = ""
            for n in (c * chunk)..<((c + 1) * chunk) {
                lines += AgentProcessTests.line(n % 600, "user\(n % 500)", "198.51.\(n / 250 % 250).\(n % 250 + 1)")
            }
            try AgentCommandTests.write(lines, to: dir + "/auth.log", append: true)
            usleep(50_000)
            if c == 6 || c == 13 {
                #expect(agent.process.isRunning, "\(agent.log)")
                kill(agent.process.processIdentifier, SIGKILL)
                agent.process.waitUntilExit()
                agent = try AgentProcessTests.Agent(config: dir + "/agent.conf", dir: dir)
            }
        }
        let deadline = Date().addingTimeInterval(180)
        var counts = try Self.python(spooled)
        while counts != "\(logins) \(logins)" && Date() < deadline {
            usleep(250_000)
            counts = try Self.python(spooled)
        }
        #expect(counts == "\(logins) \(logins)", "spooled rows and distinct ids: each alert queued once")
        #expect(agent.terminate(within: 20) == 0, "\(agent.log)")

        // Every line of the alert file is whole, and every login is in it; a run writes
        // an alert once, so only a batch cut short by a kill is there again.
        let text = try String(contentsOfFile: dir + "/alerts.jsonl", encoding: .utf8)
        #expect(text.hasSuffix("\n"))
        var written: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            let id = try #require((object?["event"] as? [String: Any])?["id"] as? String, "a torn line: \(line.prefix(200))")
            written[id, default: 0] += 1
        }
        #expect(written.count == logins, "every login's alert written")
        #expect(written.values.allSatisfy { $0 <= 3 }, "written at most once per run")
        // Each login stored once, across the kills.
        let stored = try Self.python("""
            import sqlite3
            print(sqlite3.connect("\(dir)/state/ipsight.db").execute("SELECT count(*) FROM observations").fetchone()[0])
            """)
        #expect(stored == "\(logins)")
    }
}
