import Foundation
import Testing
import TestSupport

/// The product end to end with real parts: a real journald fed with entries that
/// look like sshd's own, `ipsight run` as a process following it, and
/// `webhook_sink.py` on 127.0.0.1 checking signatures. The receiver goes away and
/// comes back, the agent is stopped mid-stream and restarted, and a bad config
/// arrives on SIGHUP; no event or alert may be lost or repeated on the way.
@Suite(.serialized) struct JournalAgentTests {
    /// Accounts no other test writes to the journal, each at home in its own /16
    /// of a different /8, as real users' providers are.
    let users: [String] = {
        let tag = Journald.token()
        return (0..<30).map { "\(tag)u\($0)" }
    }()
    let dir = CommandLineTests.work + "/journal-agent"
    let secret = "whsec_" + Data("journal-agent-test-key".utf8).base64EncodedString()

    func home(_ u: Int) -> String { "\(11 + 7 * u).\(u * 13 % 256)" }
    func normal(_ u: Int, _ n: Int) -> String {
        "Accepted password for \(users[u]) from \(home(u)).\(n / 50 % 4).\(201 + n % 50) port 22 ssh2"
    }
    func attack(_ u: Int) -> String { "Accepted password for \(users[u]) from 203.0.113.\(u + 1) port 22 ssh2" }

    func config(port: Int, extra: String = "") -> String {
        """
        [agent]
        state_dir = \(dir)/state
        model = \(dir)/model.ipsm
        rules = \(CommandLineTests.root)/rules
        [sources]
        journal = true
        follow = true
        start = end
        [retrain]
        retention = 3650d
        interval = 3650d
        [alerts]
        output = \(dir)/alerts.jsonl
        challenges = false
        [sink.soc]
        type = webhook
        url = http://127.0.0.1:\(port)/hook
        secret = file:\(dir)/webhook.secret
        [api]
        socket = \(dir)/state/api.sock
        \(extra)
        """
    }

    /// The successful logins stored for this test's accounts: (user, ip) → rows.
    func stored() throws -> [String: Int] {
        let query = """
            import sqlite3, sys, json
            rows = sqlite3.connect(sys.argv[1]).execute(
                "SELECT user || ' ' || ip, COUNT(*) FROM observations WHERE user LIKE ? GROUP BY 1", (sys.argv[2] + '%',))
            print(json.dumps(dict(rows.fetchall())))
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", query, dir + "/state/ipsight.db", String(users[0].dropLast(2))]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (try JSONSerialization.jsonObject(with: data) as? [String: Int]) ?? [:]
    }

    /// Polls until `done` holds for what the store holds.
    func waitForStore(seconds: Double = 60, until done: ([String: Int]) -> Bool) throws -> [String: Int] {
        let deadline = Date().addingTimeInterval(seconds)
        var rows = try stored()
        while !done(rows) && Date() < deadline {
            usleep(200_000)
            rows = try stored()
        }
        return rows
    }

    /// (user, ip) of every distinct alert id received, and the ids seen more than once
    /// under different ids for the same login (a repeated event).
    func received(_ receiver: WebhookReceiver) -> [String: String] {
        var byID: [String: String] = [:]
        for alert in receiver.alerts() {
            if let id = alert["id"] as? String, let user = alert["user"] as? String, let ip = alert["ip"] as? String {
                byID[id] = "\(user) \(ip)"
            }
        }
        return byID
    }

    func run(_ name: String, port: Int) throws -> AgentProcessTests.Agent {
        let logs = dir + "/" + name
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        return try AgentProcessTests.Agent(config: dir + "/agent.conf", dir: logs, verbose: true)
    }

    @Test func journalToWebhookThroughOutageRestartAndReload() throws {
        try Journald.require()
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        // A model of the accounts' home networks, and a history of 300 logins learnt
        // from a file before the agent follows the journal.
        var train = "", history = ""
        for u in users.indices {
            for k in 0..<40 { train += "\(users[u]), \(home(u)).\(k % 4).\(k)\n" }
        }
        for k in 0..<300 { history += AgentProcessTests.line(k % 60, users[k % 30], "\(home(k % 30)).\(k % 4).\(k % 200 + 1)") }
        try AgentCommandTests.write(train, to: dir + "/train.csv")
        try AgentCommandTests.write(history, to: dir + "/auth.log")
        let trained = try CommandLineTests.ipsight([
            "train", "--train", dir + "/train.csv", "--output", dir + "/model.ipsm", "--seed", "3",
            "-H", "num_entity_vectors=200", "-H", "vector_dim=16", "-H", "epochs=20",
            "-H", "mini_batch_size=100", "-H", "learning_rate=0.05"])
        #expect(trained.status == 0, "\(trained.err)")
        try AgentCommandTests.write("""
            [agent]
            state_dir = \(dir)/state
            model = \(dir)/model.ipsm
            rules = \(CommandLineTests.root)/rules
            [sources]
            journal = false
            files = \(dir)/auth.log
            follow = false
            utc = true
            [retrain]
            retention = 3650d
            [api]
            socket = off
            """, to: dir + "/learn.conf")
        let learnt = try CommandLineTests.ipsight(["run", "--config", dir + "/learn.conf"])
        #expect(learnt.status == 0, "\(learnt.err)")
        #expect(try stored().count == 300)

        let port = freePort()
        try AgentCommandTests.write(secret, to: dir + "/webhook.secret")
        try AgentCommandTests.write(config(port: port), to: dir + "/agent.conf")
        let socket = dir + "/state/api.sock"
        var receiver = try WebhookReceiver(port: port, output: dir + "/received.jsonl", secret: secret)
        defer { receiver.stop() }

        // Journal rotation or vacuum by another test would delete entries not read yet.
        try Journald.exclusively {
            var agent = try run("first", port: port)
            defer { if agent.process.isRunning { kill(agent.process.processIdentifier, SIGKILL) } }
            _ = try AgentProcessTests.status(socket) { ($0["model"] as? [String: Any])?["calibrated"] as? Bool == true }

            // 1. Normal logins, five takeovers, a forgery and junk, as sshd writes them.
            var lines = (0..<90).map { normal($0 % 30, $0 / 30) }
            lines.insert(contentsOf: (0..<5).map(attack), at: 45)
            try Journald.send(lines)
            // An ordinary user naming its process sshd: not a login, whatever it says.
            try Journald.send(["Accepted password for \(users[5]) from 198.51.100.200 port 22 ssh2"], user: "nobody")
            // A user name that carries a fake address, control bytes and a line over
            // the 64 KiB limit (checked in the journal: journald drops an entry it
            // cannot fit in its journal file, and then there is nothing to skip).
            let forgedName = "\(users[3]) from 203.0.113.250 port 22"
            try Journald.send(["Accepted password for \(forgedName) from \(home(3)).0.5 port 22 ssh2",
                               "\u{1}\u{7f}Accepted password for \u{1b}[2J from ::: port x ssh2"])
            let longLine = Journald.token()
            try Journald.send([String(repeating: "A", count: 96 * 1024)], fields: ["IPSIGHT_TEST=\(longLine)"])
            #expect(waitUntil(seconds: 10) { ((try? Journald.entries(matching: "IPSIGHT_TEST=\(longLine)")) ?? []).count == 1 },
                    "journald stored the long entry")
            var expected = Set((0..<5).map { "\(users[$0]) 203.0.113.\($0 + 1)" })
            receiver.wait { _ in Set(received(receiver).values) == expected }
            #expect(Set(received(receiver).values) == expected, "each takeover alerted, nothing for normal logins or forgeries")
            #expect(receiver.records().allSatisfy { $0["signature_ok"] as? Bool == true }, "valid Standard Webhooks signatures")
            let first = try waitForStore { $0.values.reduce(0, +) >= 300 + 95 + 1 }
            #expect(first["\(forgedName) \(home(3)).0.5"] == 1, "the address is the one sshd wrote, not the one in the name")
            #expect(first["\(users[5]) 198.51.100.200"] == nil, "a forged entry is not a login")
            let state = try AgentProcessTests.status(socket) { ($0["skipped_input"] as? Int ?? 0) >= 1 }
            #expect(state["skipped_input"] as? Int == 1, "the long entry is skipped and counted")
            #expect(agent.log.contains("skipped input: 1 over the length limit"), "\(agent.log)")

            // 2. The receiver is down while the agent is stopped mid-stream and restarted.
            receiver.stop()
            var stream = (0..<120).map { normal($0 % 30, 3 + $0 / 30) }
            for u in 5..<15 { stream.insert(attack(u), at: (u - 5) * 12 + 6) }
            let streamFile = dir + "/stream.txt"
            try AgentCommandTests.write(stream.joined(separator: "\n") + "\n", to: streamFile)
            let sender = Process()
            sender.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            sender.arguments = Journald.sender(comm: "sshd") + ["--rate", "100", streamFile]
            sender.standardError = FileHandle.nullDevice
            try sender.run()
            usleep(600_000)
            let stopping = Date()
            #expect(agent.terminate() == 0, "\(agent.log)")
            #expect(Date().timeIntervalSince(stopping) < 5, "SIGTERM ends the agent within 5 s")
            agent = try run("second", port: port)
            sender.waitUntilExit()
            #expect(sender.terminationStatus == 0)
            var logins = 300 + 95 + 1 + 130
            let second = try waitForStore { $0.values.reduce(0, +) >= logins }
            #expect(second.values.reduce(0, +) == logins, "every login stored")
            #expect(second.values.allSatisfy { $0 == 1 }, "no login stored twice: \(second.filter { $0.value > 1 })")

            // The receiver returns: what was spooled arrives, each alert once.
            receiver = try WebhookReceiver(port: port, output: dir + "/received.jsonl", secret: secret)
            expected.formUnion((5..<15).map { "\(users[$0]) 203.0.113.\($0 + 1)" })
            receiver.wait { _ in Set(received(receiver).values) == expected }
            let byID = received(receiver)
            #expect(Set(byID.values) == expected, "every alert arrives after the outage")
            #expect(byID.count == expected.count, "no login alerted twice under different ids")
            #expect(receiver.records().allSatisfy { $0["signature_ok"] as? Bool == true })

            // 3. A config that does not validate is refused on SIGHUP; the running one stays.
            try AgentCommandTests.write(config(port: port, extra: "[allowlist]\nnetworks = 203.0.113.0/24\n[cold_start]\nmin_logins = many\n"),
                                        to: dir + "/agent.conf")
            kill(agent.process.processIdentifier, SIGHUP)
            for _ in 0..<100 where !agent.log.contains("reload refused") { usleep(100_000) }
            #expect(agent.log.contains("reload refused, the running config stays"), "\(agent.log)")
            #expect(agent.log.contains("cold_start.min_logins"), "the error names the key")
            try Journald.send([attack(15)])
            expected.insert("\(users[15]) 203.0.113.16")
            receiver.wait { _ in Set(received(receiver).values) == expected }
            #expect(Set(received(receiver).values) == expected, "the old config still alerts")
            let refused = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", users[16], "--ip", "203.0.113.17"])
            #expect(refused.status == 20, "\(refused.out)\(refused.err)")
            // The same change without the error takes effect.
            try AgentCommandTests.write(config(port: port, extra: "[allowlist]\nnetworks = 203.0.113.0/24\n"), to: dir + "/agent.conf")
            kill(agent.process.processIdentifier, SIGHUP)
            for _ in 0..<100 where !agent.log.contains("reloaded") { usleep(100_000) }
            let allowed = try CommandLineTests.ipsight(["check", "--socket", socket, "--user", users[16], "--ip", "203.0.113.17"])
            #expect(allowed.status == 0, "the allowlist of the new config applies: \(allowed.out)")

            logins += 1
            #expect(try waitForStore { $0.values.reduce(0, +) >= logins }.values.reduce(0, +) == logins)
            #expect(agent.terminate() == 0, "\(agent.log)")
        }
    }
}
