import IPSightCore
import Foundation
import IPInsights
import Observability
import TestSupport
import Testing
@testable import Agent

/// The whole agent over a real sshd log file: a model trained here, the shipped
/// rules, SQLite state in a temporary directory, and a restart in the middle.
@Suite struct EndToEndTests {
    func config(_ dir: TemporaryDirectory) -> AgentConfig {
        var c = AgentConfig()
        c.stateDirectory = dir.path
        c.rulesDirectory = Paths.rules
        c.journal = false
        c.files = [dir.file("auth.log")]
        c.follow = false
        c.utc = true
        c.retention = 3650 * 86_400   // the log's times are in the past
        c.coldStartMinLogins = 5
        return c
    }

    /// A rotated file deleted before the agent read its end: one warning in the
    /// agent's log, one count on `/metrics`, and the new file read from its start.
    @Test func linesLostToRotationAreAWarningAndACount() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: "alice", ip: "10.1.0.1"))
        try runToEnd(AgentRuntime(config: config(dir), configPath: nil, router: CollectingAlertRouter(), logger: .discarding), retrain: false)
        dir.write("auth.log", Synthetic.sshdLine(minute: 1, user: "bob", ip: "10.2.0.1"), append: true)
        #expect(rename(dir.file("auth.log"), dir.file("auth.log.1")) == 0)
        dir.write("auth.log", Synthetic.sshdLine(minute: 2, user: "carol", ip: "10.3.0.1"))
        #expect(unlink(dir.file("auth.log.1")) == 0)

        let log = LogCapture()
        let metrics = PrometheusMetrics(help: AgentStats.help, timerBuckets: AgentStats.timerBuckets)
        let agent = try AgentRuntime(config: config(dir), configPath: nil, router: CollectingAlertRouter(), logger: log.logger(),
                                     metrics: metrics.factory)
        try runToEnd(agent, retrain: false)
        #expect(agent.events == 1)
        let lost = log.messages(at: .warning).filter { $0.hasPrefix("lines lost: \(dir.file("auth.log")): ") }
        #expect(lost.count == 1, "\(log.entries)")
        #expect(Exposition.value("ipsight_unread_rotated_files_total", in: metrics.text()) == 1)
        #expect(Exposition.value("ipsight_login_events_total", in: metrics.text()) == 1)
        #expect(agent.stats.snapshot.unreadRotated == 1)
        #expect(log.messages(at: .notice).last == "stopped after 1 login events, 0 alerts")
    }

    @Test func alertsForUnrelatedNetworksAndResumesWithoutRepeating() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try ModelFile.save(Synthetic.model(), to: dir.file("model.ipsm"))

        // A first run learns the users' usual networks.
        var rng = SeededRandom(seed: 11)
        var usual = ""
        for minute in 0..<250 {
            let user = Synthetic.users[minute % Synthetic.users.count]
            usual += Synthetic.sshdLine(minute: minute, user: user, ip: Synthetic.address(user, &rng))
        }
        dir.write("auth.log", usual)
        let firstRouter = CollectingAlertRouter()
        let first = try AgentRuntime(config: config(dir), configPath: nil, router: firstRouter, logger: .discarding)
        try runToEnd(first, retrain: false)
        #expect(first.events == 250)
        #expect(firstRouter.received.isEmpty, "cold start and calibration: nothing to alert yet")
        #expect(try first.store.count() == 250)

        // New lines arrive; a restarted agent reads only those.
        var later = ""
        var minute = 250
        for user in Synthetic.users {
            later += Synthetic.sshdLine(minute: minute, user: user, ip: Synthetic.address(user, &rng))
            later += Synthetic.sshdLine(minute: minute + 1, user: user, ip: "203.0.113.\(minute % 200 + 1)")
            minute += 2
        }
        // The intruder comes back: alerted logins are not learnt, so this alerts again.
        later += Synthetic.sshdLine(minute: minute, user: "alice", ip: "203.0.113.251")
        dir.write("auth.log", later, append: true)
        let secondRouter = CollectingAlertRouter()
        let second = try AgentRuntime(config: config(dir), configPath: nil, router: secondRouter, logger: .discarding)
        #expect(second.detector.calibration != nil, "calibrated at start from the stored logins")
        try runToEnd(second, retrain: false)
        #expect(second.events == 2 * Synthetic.users.count + 1, "only the new lines are read")
        #expect(try second.store.count() == 251 + 2 * Synthetic.users.count, "nothing stored twice")
        let kept = try second.store.observations()
        #expect(kept.filter { !$0.learned }.count == Synthetic.users.count + 1, "alerted logins are kept, not learnt")

        let alerts = secondRouter.received
        #expect(Set(alerts.map(\.user)) == Set(Synthetic.users))
        #expect(alerts.allSatisfy { $0.ip.hasPrefix("203.0.113.") && $0.decision == .alert && $0.service == "sshd" })
        #expect(alerts.count == Synthetic.users.count + 1, "no alerts for the usual networks")
        #expect(alerts.filter { $0.user == "alice" }.count == 2)
        #expect(alerts.allSatisfy { $0.reasons.contains { $0.0 == "nearest known network" } })
        #expect(Set(alerts.map(\.id)).count == alerts.count)

        // Feedback: alice's first trip was hers; once marked safe it is learnt.
        let trip = try #require(alerts.first { $0.user == "alice" })
        let before = try second.store.observations(learnedOnly: true).count
        #expect(try second.store.markLearned(user: "alice", ip: trip.ip) == 1)
        #expect(try second.store.observations(learnedOnly: true).count == before + 1)

        // A third start finds nothing new.
        let thirdRouter = CollectingAlertRouter()
        let third = try AgentRuntime(config: config(dir), configPath: nil, router: thirdRouter, logger: .discarding)
        try runToEnd(third, retrain: false)
        #expect(third.events == 0 && thirdRouter.received.isEmpty)
    }

    @Test func aFirstModelIsTrainedFromTheStoreWhenThereIsNone() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var rng = SeededRandom(seed: 12)
        var text = ""
        for minute in 0..<240 {
            let user = Synthetic.users[minute % Synthetic.users.count]
            text += Synthetic.sshdLine(minute: minute, user: user, ip: Synthetic.address(user, &rng))
        }
        dir.write("auth.log", text)
        var c = config(dir)
        c.bootstrapMinLogins = 100
        let agent = try AgentRuntime(config: c, configPath: nil, router: CollectingAlertRouter(), logger: .discarding)
        #expect(agent.detector.model == nil)
        // The background thread is not started; the final step of a one-off run trains.
        try runToEnd(agent, retrain: true)
        #expect(agent.detector.model != nil && agent.detector.calibration != nil)
        let saved = try ModelFile.load(path: dir.file("model.ipsm"))
        #expect(saved.trainedPairs > 0)
    }

    @Test func alertsAreWrittenAsECSJSONLines() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let router = try JSONLinesAlertRouter(output: dir.file("alerts.jsonl"))
        let alert = AlertFixture.alert
        try router.submit(alert)
        try router.submit(alert)
        let text = try #require(readTextFile(dir.file("alerts.jsonl")))
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        let json = try JSONValue.parse(String(lines[0]))
        #expect(json["@timestamp"]?.stringValue == "2023-11-14T22:13:20.000Z")
        #expect(json["event"]?["id"]?.stringValue == "abc")
        #expect(json["user"]?["name"]?.stringValue == "al\"ice")
        #expect(json["source"]?["ip"]?.stringValue == "203.0.113.9")
        #expect(json["ipsight"]?["reasons"]?.arrayValue?.count == 1)
    }

    /// One alert, one ECS document: the `[alerts] output` file and an `ecs` sink
    /// write the same bytes for it.
    @Test func theSameAlertIsTheSameECSDocumentFromEveryOutput() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let output = try JSONLinesAlertRouter(outputs: [dir.file("output.jsonl")])
        let alert = AlertFixture.alert
        try output.submit(alert)
        try ECSSink(name: "ecs", destination: .file(dir.file("sink.jsonl"))).deliver(alert)
        let fromOutput = try #require(readTextFile(dir.file("output.jsonl")))
        let fromSink = try #require(readTextFile(dir.file("sink.jsonl")))
        #expect(!fromOutput.isEmpty && fromOutput == fromSink)
    }

    @Test func startAtEndSkipsWhatTheFileHeldAtFirstStart() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: "alice", ip: "10.1.0.1"))
        var c = config(dir)
        c.startAtEnd = true
        let first = try AgentRuntime(config: c, configPath: nil, router: CollectingAlertRouter(), logger: .discarding)
        try runToEnd(first, retrain: false)
        #expect(first.events == 0)
        dir.write("auth.log", Synthetic.sshdLine(minute: 1, user: "bob", ip: "10.2.0.1"), append: true)
        let second = try AgentRuntime(config: c, configPath: nil, router: CollectingAlertRouter(), logger: .discarding)
        try runToEnd(second, retrain: false)
        #expect(second.events == 1)
        #expect(try second.store.observations().map(\.user) == ["bob"])
    }

    /// A followed source that fails (here a directory where the file should be) is
    /// read again from its saved position once it can be: the agent neither exits
    /// nor crash-loops, and the other sources go on.
    @Test func aFailingSourceIsReopenedWhileFollowing() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try ModelFile.save(Synthetic.model(), to: dir.file("model.ipsm"))
        var c = config(dir)
        c.follow = true
        c.files = [dir.file("auth.log"), dir.file("broken.log")]
        dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: "alice", ip: "10.1.0.5"))
        mkdir(dir.file("broken.log"), 0o755)
        let agent = try AgentRuntime(config: c, configPath: nil, router: CollectingAlertRouter(), logger: .discarding)
        let running = RunningAgent(agent)
        #expect(waitUntil(seconds: 30) { agent.events == 1 })
        // The directory makes that source fail; it is replaced by the real file.
        usleep(1_500_000)
        rmdir(dir.file("broken.log"))
        dir.write("broken.log", Synthetic.sshdLine(minute: 1, user: "bob", ip: "10.2.0.5"))
        #expect(waitUntil(seconds: 30) { agent.events == 2 }, "the failed source was read again")
        dir.write("auth.log", Synthetic.sshdLine(minute: 2, user: "alice", ip: "10.1.0.6"), append: true)
        #expect(waitUntil(seconds: 30) { agent.events == 3 })
        agent.stop()
        #expect(try running.wait(seconds: 10))
    }
}

import AlertSinks
import IPInsightsFormats

enum AlertFixture {
    static let alert = Alert(id: "abc", time: 1_700_000_000, host: "h", service: "sshd", outcome: .success, user: "al\"ice",
                             ip: "203.0.113.9", decision: .alert, severity: .error, risk: 0.999, dotProduct: -3.5,
                             summary: "alice logged in to sshd from 203.0.113.9", reasons: [("risk", "0.999")])
}
