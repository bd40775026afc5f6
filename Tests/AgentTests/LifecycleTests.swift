import IPSightCore
import TestSupport
import Foundation
import IPInsights
import Testing
@testable import Agent

@Suite struct LifecycleTests {
    func config(_ dir: TemporaryDirectory, follow: Bool) -> String {
        """
        [agent]
        state_dir = \(dir.path)
        rules = \(Paths.rules)
        [sources]
        journal = false
        files = \(dir.file("auth.log"))
        follow = \(follow)
        utc = true
        [cold_start]
        min_logins = 5
        [retrain]
        retention = 3650d
        """
    }

    @Test func aBadConfigIsRefusedOnReloadAndTheOldOneStays() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", "")
        dir.write("agent.conf", config(dir, follow: false))
        let path = dir.file("agent.conf")
        let log = LogCapture()
        let agent = try AgentRuntime(config: try AgentConfig.load(path: path), configPath: path,
                                     router: CollectingAlertRouter(), logger: log.logger())
        dir.write("agent.conf", config(dir, follow: false) + "\n[cold_start]\npolicy = panic\n")
        agent.reload()
        #expect(agent.config.coldStartMinLogins == 5)
        // The operator learns why, as an error naming the line and the key.
        let refused = log.messages(at: .error)
        #expect(refused.count == 1 && refused[0].hasPrefix("reload refused, the running config stays: \(path):"), "\(log.entries)")
        #expect(refused.first?.contains("cold_start.policy") == true, "\(refused)")
        dir.write("agent.conf", config(dir, follow: false).replacingOccurrences(of: "min_logins = 5", with: "min_logins = 9"))
        agent.reload()
        #expect(agent.config.coldStartMinLogins == 9)
        #expect(log.messages(at: .notice).last == "reloaded \(path)")
    }

    @Test func theRoutedNetworkTableLoadsAtStartAndOnlyAGoodReloadReplacesIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", "")
        dir.write("table.tsv", "10.0.0.0\t10.255.255.255\t64500\n172.16.0.0\t172.16.255.255\t64501\n")
        // A model and stored logins, so that the risk is calibrated at start.
        try ModelFile.save(Synthetic.model(), to: dir.file("model.ipsm"))
        try ObservationStore(path: dir.file("ipsight.db")).commit(Synthetic.observations(300), positions: [:])
        let text = config(dir, follow: false) + "\n[risk]\nnetworks = \(dir.file("table.tsv"))\n"
        let path = dir.file("agent.conf")
        dir.write("agent.conf", text)
        let agent = try AgentRuntime(config: try AgentConfig.load(path: path), configPath: path,
                                     router: CollectingAlertRouter(), logger: .discarding)
        let first = try #require(agent.config.networks)
        #expect(first.networks.count == 2 && agent.detector.calibration?.networks === first)

        // Unchanged: not read again, not recalibrated.
        let installedAt = agent.detector.installedModel?.installedAt
        agent.reload()
        #expect(agent.config.networks === first && agent.detector.installedModel?.installedAt == installedAt)

        // A malformed table refuses the reload: the old config, table and calibration stay.
        dir.write("bad.tsv", "10.0.0.0\t10.255.255.255\tAS64500\n")
        dir.write("agent.conf", text.replacingOccurrences(of: "table.tsv", with: "bad.tsv")
            .replacingOccurrences(of: "min_logins = 5", with: "min_logins = 7"))
        agent.reload()
        #expect(agent.config.networksPath == dir.file("table.tsv") && agent.config.coldStartMinLogins == 5)
        #expect(agent.config.networks === first && agent.detector.calibration?.networks === first)

        // A good new table is read and the risk refitted with it (at once: no retrainer thread runs).
        dir.write("new.tsv", "10.0.0.0\t10.0.255.255\t64500\n10.1.0.0\t10.255.255.255\t64502\n172.16.0.0\t172.16.255.255\t64501\n")
        dir.write("agent.conf", text.replacingOccurrences(of: "table.tsv", with: "new.tsv"))
        agent.reload()
        let second = try #require(agent.config.networks)
        #expect(second !== first && second.networks.count == 3 && agent.detector.calibration?.networks === second)

        // Taken out: the risk is refitted without a table.
        dir.write("agent.conf", config(dir, follow: false))
        agent.reload()
        #expect(agent.config.networks == nil && agent.detector.calibration != nil && agent.detector.calibration?.networks == nil)
    }

    @Test func stopEndsAFollowingAgentAndKeepsWhatItRead() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: "alice", ip: "10.1.0.1")
            + Synthetic.sshdLine(minute: 1, user: "bob", ip: "10.2.0.1"))
        dir.write("agent.conf", config(dir, follow: true))
        let agent = try AgentRuntime(config: try AgentConfig.load(path: dir.file("agent.conf")), configPath: nil,
                                     router: CollectingAlertRouter(), logger: .discarding)
        let running = RunningAgent(agent)
        // Wait (bounded) until both lines are stored, then stop as SIGTERM would.
        // A connection of the test's own: the agent's belongs to its pipeline thread.
        let reader = try ObservationStore(path: dir.file("ipsight.db"))
        #expect(waitUntil(seconds: 10) { (try? reader.count()) == 2 })
        let stopped = Date()
        agent.stop()
        #expect(try running.wait(seconds: 10), "run returns after stop")
        #expect(Date().timeIntervalSince(stopped) < 5, "run returns within 5 s of stop")
        #expect(try reader.positions()["file:" + dir.file("auth.log")] != nil)
    }

    @Test func aSourceThatFailsEndsTheRunWithAnError() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("agent.conf", config(dir, follow: false))
        let agent = try AgentRuntime(config: try AgentConfig.load(path: dir.file("agent.conf")), configPath: nil,
                                     router: CollectingAlertRouter(), logger: .discarding)
        #expect(throws: AgentFailure.self) { try runToEnd(agent, retrain: false) }
    }
}
