#if canImport(Glibc)
import TestSupport
import IPSightCore
import Glibc
#endif
import AlertSinks
import IPInsightsFormats
import Synchronization
import Testing
@testable import Agent

/// The alert file under an alert storm and a crash: the alerts of a batch are written
/// together, and a write cut short by a crash leaves nothing for the next run to
/// trip over.
@Suite struct AlertOutputTests {
    static func alert(_ n: Int) -> Alert {
        Alert(id: "event-\(n)", time: 1_763_884_800 + Double(n), host: "bastion", service: "sshd", outcome: .success,
              user: "user\(n % 7)", ip: "203.0.113.\(n % 250 + 1)", decision: .alert, severity: .critical,
              risk: 0.99, dotProduct: -2.5, summary: "user\(n % 7) logged in from an unrelated network",
              reasons: [("risk", "0.99 ≥ 0.99")])
    }

    /// The `event.id` of each line, failing the test on a line that is not JSON.
    static func ids(in path: String) throws -> [String] {
        let text = try #require(readTextFile(path))
        #expect(text.isEmpty || text.hasSuffix("\n"), "the file ends with a whole line")
        return try text.split(separator: "\n").map { line in
            let value = try JSONValue.parse(String(line))
            return try #require(value["event"]?["id"]?.stringValue, "\(line)")
        }
    }

    @Test func aLineTornByACrashIsCutWhenTheFileIsOpenedAgain() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("alerts.jsonl")
        let acknowledged = (1...40).map(Self.alert)
        do {
            let output = try JSONLinesAlertRouter(outputs: [path])
            try output.submit(Array(acknowledged[0..<20]))
            try output.submit(Array(acknowledged[20..<40]))
        }
        // A crash in the middle of the next batch's write: some whole lines, then half a line.
        let unacknowledged = (41...50).map(Self.alert)
        var bytes: [UInt8] = []
        for alert in unacknowledged { bytes += ECSDocument.encode(alert) }
        let firstLine = ECSDocument.encode(unacknowledged[0]).count
        dir.write("alerts.jsonl", String(decoding: bytes[0..<(3 * firstLine + firstLine / 2)], as: UTF8.self), append: true)

        // The restarted agent writes that batch again (its logins were not committed) and goes on.
        let reopened = try JSONLinesAlertRouter(outputs: [path])
        try reopened.submit(unacknowledged)
        let later = (51...60).map(Self.alert)
        try reopened.submit(later)

        let ids = try Self.ids(in: path)
        var counts: [String: Int] = [:]
        for id in ids { counts[id, default: 0] += 1 }
        #expect((acknowledged + later).allSatisfy { counts[$0.id] == 1 }, "acknowledged alerts once each")
        // At least once: whole lines of the interrupted write may be there twice, nothing torn.
        #expect(unacknowledged.allSatisfy { (1...2).contains(counts[$0.id] ?? 0) })
        #expect(ids.count == acknowledged.count + later.count + unacknowledged.count + 3)
    }

    @Test func aFileThatIsOneUnfinishedLineStartsOver() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("alerts.jsonl", "{\"@timestamp\":\"2025-11-23T08:00:00Z\",\"event\":{\"id\":\"ev")
        try JSONLinesAlertRouter(outputs: [dir.file("alerts.jsonl")]).submit([Self.alert(1)])
        #expect(try Self.ids(in: dir.file("alerts.jsonl")) == ["event-1"])
    }

    /// Counts how the agent hands alerts over.
    final class BatchCountingRouter: AlertRouting, @unchecked Sendable {
        let calls = Mutex<(single: Int, batches: [Int])>((0, []))
        func submit(_ alert: Alert) throws { calls.withLock { $0.single += 1 } }
        func submit(_ alerts: [Alert]) throws { calls.withLock { $0.batches.append(alerts.count) } }
        func drain(seconds: Double) {}
    }

    @Test func theAgentSubmitsEachBatchsAlertsTogether() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        // Every login alerts: new accounts, alerted while in cold start.
        var log = ""
        for n in 0..<3000 { log += Synthetic.sshdLine(minute: n % 600, user: "user\(n % 300)", ip: "198.51.100.\(n % 200 + 1)") }
        dir.write("auth.log", log)
        var c = AgentConfig()
        c.stateDirectory = dir.path
        c.rulesDirectory = Paths.rules
        c.journal = false
        c.files = [dir.file("auth.log")]
        c.follow = false
        c.utc = true
        c.retention = 3650 * 86_400
        c.coldStartPolicy = .alert
        c.coldStartMinLogins = 1_000_000
        let router = BatchCountingRouter()
        let agent = try AgentRuntime(config: c, configPath: nil, router: router, logger: .discarding)
        try runToEnd(agent, retrain: false)
        let (single, batches) = router.calls.withLock { $0 }
        #expect(batches.reduce(0, +) == 3000, "every login alerted, handed over in batches")
        #expect(single == 0, "no alert on its own")
        #expect(batches.count < 30, "\(batches.count) batches")
    }
}
