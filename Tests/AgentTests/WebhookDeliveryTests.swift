import IPSightCore
import Foundation
import AlertSinks
import IPInsights
import Observability
import Testing
import TestSupport
@testable import Agent

/// The agent with a `[sink.NAME]` webhook: alerts reach a real receiver on
/// 127.0.0.1 with valid Standard Webhooks signatures, and alerts queued while the
/// receiver is down arrive after it comes back, across an agent restart.
@Suite(.serialized) struct WebhookDeliveryTests {
    static let secret = "whsec_" + Data("ipsight-test-signing-key".utf8).base64EncodedString()

    func config(_ dir: TemporaryDirectory, port: Int) throws -> AgentConfig {
        setenv("IPSIGHT_TEST_WEBHOOK_SECRET", Self.secret, 1)
        var c = try AgentConfig.parse("""
            [sources]
            journal = false
            files = \(dir.file("auth.log"))
            follow = false
            utc = true
            [agent]
            state_dir = \(dir.path)
            rules = \(Paths.rules)
            [alerts]
            output = \(dir.file("alerts.jsonl"))
            [cold_start]
            min_logins = 5
            [retrain]
            retention = 3650d
            [sink.soc]
            type = webhook
            url = http://127.0.0.1:\(port)/hook
            secret = env:IPSIGHT_TEST_WEBHOOK_SECRET
            """, path: "test.conf")
        c.follow = false
        return c
    }

    @Test func alertsArriveSignedAndSurviveAnOutage() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try ModelFile.save(Synthetic.model(), to: dir.file("model.ipsm"))
        let port = 20_000 + Int(getpid() % 20_000)
        var rng = SeededRandom(seed: 5)
        var usual = ""
        for minute in 0..<250 {
            let user = Synthetic.users[minute % Synthetic.users.count]
            usual += Synthetic.sshdLine(minute: minute, user: user, ip: Synthetic.address(user, &rng))
        }
        dir.write("auth.log", usual)
        var c = try config(dir, port: port)
        c.modelPath = dir.file("model.ipsm")
        try runToEnd(AgentRuntime(config: c, configPath: nil, logger: .discarding, alertLogger: .discarding), retrain: false)

        // The receiver is down: the attack logins are alerted and spooled.
        var attacks = ""
        for (k, user) in Synthetic.users.enumerated() {
            attacks += Synthetic.sshdLine(minute: 300 + k, user: user, ip: "203.0.113.\(k + 1)")
        }
        dir.write("auth.log", attacks, append: true)
        let delivery = LogCapture()
        let down = PrometheusMetrics(help: AlertRouter.metricHelp)
        try runToEnd(AgentRuntime(config: c, configPath: nil, logger: .discarding, alertLogger: delivery.logger("ipsight.alerts"),
                               metrics: down.factory), retrain: false)
        let local = (readTextFile(dir.file("alerts.jsonl")) ?? "").split(separator: "\n")
        #expect(local.count == Synthetic.users.count, "every attack alerted locally")
        // Delivery says what it could not do, in its own log, and counts what waits.
        let warnings = delivery.messages(at: .warning)
        #expect(warnings.contains { $0.hasPrefix("alert drain: \(Synthetic.users.count) alerts still queued") }, "\(warnings)")
        #expect(Exposition.value("ipsight_alert_spool_depth", in: down.text()) == Double(Synthetic.users.count), "\(down.text())")
        #expect(Exposition.value(#"ipsight_alert_deliveries_total{result="delivered"}"#, in: down.text()) == 0)

        // The receiver comes back; a restarted agent delivers what was spooled.
        let receiver = try WebhookReceiver(port: port, output: dir.file("received.jsonl"), secret: Self.secret)
        defer { receiver.stop() }
        let up = PrometheusMetrics(help: AlertRouter.metricHelp)
        let third = try AgentRuntime(config: c, configPath: nil, logger: .discarding, alertLogger: .discarding, metrics: up.factory)
        try runToEnd(third, retrain: false)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, receiver.records().count < Synthetic.users.count { usleep(100_000) }
        let records = receiver.records()
        #expect(records.count == Synthetic.users.count, "each spooled alert delivered once")
        #expect(records.allSatisfy { $0["signature_ok"] as? Bool == true }, "valid Standard Webhooks signatures")
        // The Standard Webhooks envelope: {"type", "timestamp", "data": alert}.
        let users = records.compactMap { (($0["body"] as? [String: Any])?["data"] as? [String: Any])?["user"] as? String }
        #expect(Set(users) == Set(Synthetic.users))
        // Counted as delivered before the restarted agent stopped: its drain waits for them.
        #expect(Exposition.value(#"ipsight_alert_deliveries_total{result="delivered"}"#, in: up.text()) == Double(records.count))
        #expect(Exposition.value("ipsight_alert_spool_depth", in: up.text()) == 0)
    }

    @Test func aBadSinkIsRefusedWithItsSection() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            _ = try AgentConfig.parse("""
                [sources]
                journal = true
                [sink.pager]
                type = pagerduty
                routing_key = inline-secret
                """, path: "bad.conf")
            Issue.record("accepted an inline secret")
        } catch {
            #expect(error.line == 4 && error.key == "sink.pager", "\(error)")
            #expect(error.message.contains("routing_key"))
        }
    }
}
