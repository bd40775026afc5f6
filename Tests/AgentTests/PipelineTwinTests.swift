import IPSightCore
import Foundation
import IPInsights
import LogSources
import TestSupport
import Testing
@testable import Agent

/// The agent's pipeline on its in-memory twins: journal entries from a
/// `MemoryLogSource`, alerts into a `CollectingAlertRouter`. No journald, no files
/// to follow, no receiver: what is tested is the rules, the detector and the store.
@Suite struct PipelineTwinTests {
    func config(_ dir: TemporaryDirectory) -> AgentConfig {
        var c = AgentConfig()
        c.stateDirectory = dir.path
        c.rulesDirectory = Paths.rules
        c.journal = false
        c.files = []
        c.follow = false
        c.retention = 3650 * 86_400
        c.coldStartMinLogins = 5
        return c
    }

    /// A journal entry as journald stores one from sshd, or from whoever claims to be sshd.
    static func entry(_ n: Int, user: String, ip: String, comm: String = "sshd", uid: String = "0") -> LogRecord {
        LogRecord(time: 1_700_000_000 + Double(n) * 60, host: "host", identifier: "sshd", pid: 123,
                  message: "Accepted publickey for \(user) from \(ip) port 50022 ssh2: ED25519 SHA256:abc",
                  trusted: TrustedFields(systemdUnit: comm == "sshd" ? "ssh.service" : "user@1000.service", comm: comm, uid: uid),
                  position: .journal(cursor: "s=1;i=\(n)"))
    }

    func agent(_ dir: TemporaryDirectory, _ batches: [[LogRecord]], router: CollectingAlertRouter) throws -> AgentRuntime {
        let source = MemoryLogSource(batches)
        return try AgentRuntime(config: config(dir), configPath: nil, router: router, logger: .discarding,
                                sources: { _ in [(key: "journal", source: source)] })
    }

    @Test func anEntryThatOnlyClaimsToBeSshdIsNoLogin() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let real = Self.entry(1, user: "alice", ip: "10.1.0.5")
        // An ordinary user's `logger -t sshd`: the same text, but journald's own fields say who wrote it.
        let forged = Self.entry(2, user: "root", ip: "203.0.113.7", comm: "logger", uid: "1000")
        let agent = try agent(dir, [[real, forged]], router: CollectingAlertRouter())
        try runToEnd(agent, retrain: false)
        #expect(agent.events == 1)
        #expect(try agent.store.observations().map { "\($0.user) \($0.ip)" } == ["alice 10.1.0.5"])
        #expect(try agent.store.positions()["journal"] == "s=1;i=2", "the forged entry is read past, not stopped at")
    }

    @Test func anUnrelatedNetworkIsAlertedOnceAndTheUsualOnesAreNot() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try ModelFile.save(Synthetic.model(), to: dir.file("model.ipsm"))
        var rng = SeededRandom(seed: 11)
        let usual = (0..<250).map { n in
            let user = Synthetic.users[n % Synthetic.users.count]
            return Self.entry(n, user: user, ip: Synthetic.address(user, &rng))
        }
        // Learnt in batches of 50, as a journal reader hands them out.
        let learning = CollectingAlertRouter()
        let first = try agent(dir, stride(from: 0, to: 250, by: 50).map { Array(usual[$0..<$0 + 50]) }, router: learning)
        try runToEnd(first, retrain: false)
        #expect(first.events == 250 && learning.received.isEmpty)

        // The next start is calibrated from the store: bob at home, then alice from elsewhere.
        let router = CollectingAlertRouter()
        let second = try agent(dir, [[Self.entry(300, user: "bob", ip: Synthetic.address("bob", &rng)),
                                      Self.entry(301, user: "alice", ip: "203.0.113.250")]], router: router)
        try runToEnd(second, retrain: false)
        #expect(second.events == 2)
        #expect(router.received.map { "\($0.user) \($0.ip) \($0.decision)" } == ["alice 203.0.113.250 alert"])
    }
}
