import IPSightCore
import TestSupport
import Foundation
import Synchronization
import Testing
@testable import AlertSinks

/// The router against the real receiver (`webhook_sink.py`) on 127.0.0.1. Serialized:
/// each test starts Python subprocesses, and the machine's two cores are shared.
@Suite("Alert router with a real webhook receiver", .serialized)
final class RouterTests {
    let directory: URL
    let secretValue = "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
    let secret: Secret
    /// Fast retries so the tests finish quickly; folding off unless a test turns it on.
    let fastOptions = AlertRouter.Options(backoff: Backoff(base: 0.05, cap: 0.2), fold: .off)

    init() throws {
        directory = try temporaryDirectory()
        secret = try secretFile(secretValue, in: directory)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var spoolPath: String { directory.appendingPathComponent("spool.sqlite").path }

    func webhook(_ receiver: WebhookReceiver) -> WebhookSink {
        WebhookSink(name: "soc-webhook", url: receiver.url, secret: secret, poster: HTTPPoster(timeoutSeconds: 5, connectTimeoutSeconds: 2))
    }

    func ids(_ records: [JSONValue]) -> [String] {
        records.compactMap { $0["headers"]?["webhook-id"]?.stringValue }
    }

    @Test("signed webhooks verify at the receiver")
    func signedDelivery() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue)
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions, logger: .discarding)
        defer { router.shutdown() }
        let alerts = (1...5).map { sampleAlert($0) }
        for alert in alerts { try router.submit(alert) }
        #expect(waitUntil(seconds: 20) { router.counters.delivered == 5 })
        let records = receiver.records()
        #expect(records.count == 5)
        #expect(records.allSatisfy { $0["signature_ok"] == .bool(true) })
        #expect(Set(ids(records)) == Set(alerts.map(\.id)))
        #expect(records.first?["body"]?["data"]?["user"]?.stringValue == "alice")
        #expect(router.counters.queued == 0)
    }

    @Test("a wrong secret is caught by the receiver (the check is not vacuous)")
    func wrongSecret() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: "whsec_" + Data(Array("another key".utf8)).base64EncodedString())
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions, logger: .discarding)
        defer { router.shutdown() }
        try router.submit(sampleAlert())
        #expect(waitUntil(seconds: 20) { router.counters.delivered == 1 })
        #expect(receiver.records().first?["signature_ok"] == .bool(false))
    }

    @Test("503s are retried until every alert is accepted exactly once")
    func retriesDeliverExactlyOnce() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue, failFirst: 4, failStatus: 503)
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions, logger: .discarding)
        defer { router.shutdown() }
        let alerts = (1...12).map { sampleAlert($0, ip: "198.51.100.\($0)") }
        for alert in alerts { try router.submit(alert) }
        #expect(waitUntil(seconds: 30) { router.counters.delivered == 12 })
        let accepted = ids(receiver.accepted())
        #expect(accepted.count == 12)
        #expect(Set(accepted) == Set(alerts.map(\.id)))
        #expect(receiver.records().filter { $0["status"]?.numberValue == 503 }.count == 4)
        #expect(receiver.records().allSatisfy { $0["signature_ok"] == .bool(true) })
        let counters = router.counters
        #expect(counters.retried == 4)
        #expect(counters.dropped == 0)
        #expect(counters.queued == 0)
    }

    @Test("other 4xx answers are permanent: logged, dropped and counted")
    func permanentFailures() throws {
        let receiver = try WebhookReceiver(directory: directory, failFirst: 2, failStatus: 400)
        let logged = LogCapture()
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions,
                                     logger: logged.logger("ipsight.alerts"))
        defer { router.shutdown() }
        for n in 1...3 { try router.submit(sampleAlert(n)) }
        #expect(waitUntil(seconds: 20) { router.counters.delivered + router.counters.dropped == 3 })
        #expect(router.counters.dropped == 2)
        #expect(router.counters.retried == 0)
        #expect(receiver.records().count == 3)
        let dropped = logged.messages(at: .error).filter { $0.hasPrefix("alert ") && $0.contains(" dropped: ") }
        #expect(dropped.count == 2, "\(logged.entries)")
        #expect(dropped.allSatisfy { $0.contains("HTTP 400") && $0.contains("soc-webhook") }, "\(dropped)")
    }

    @Test("queued alerts survive a restart: new router on the same spool, new receiver")
    func restartWithoutLoss() throws {
        // Nothing listens on this port: every attempt is a connection error, so alerts stay queued.
        let deadPort = freePort()
        let deadSink = WebhookSink(name: "soc-webhook", url: "http://127.0.0.1:\(deadPort)/hook", secret: secret,
                                   poster: HTTPPoster(timeoutSeconds: 2, connectTimeoutSeconds: 1))
        let alerts = (1...8).map { sampleAlert($0, user: "user\($0)") }
        do {
            let first = try AlertRouter(spoolPath: spoolPath, sinks: [deadSink], options: fastOptions, logger: .discarding)
            for alert in alerts { try first.submit(alert) }
            #expect(waitUntil(seconds: 10) { first.counters.retried >= 2 })
            #expect(first.counters.delivered == 0)
            first.drain(seconds: 0.3)
            first.shutdown()
            #expect(throws: AlertRouterError.self) { try first.submit(sampleAlert(99)) }
        }
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue)
        let second = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions, logger: .discarding)
        defer { second.shutdown() }
        #expect(waitUntil(seconds: 20) { second.counters.delivered == 8 })
        let accepted = ids(receiver.accepted())
        #expect(accepted.count == 8)
        #expect(Set(accepted) == Set(alerts.map(\.id)))
        #expect(receiver.records().allSatisfy { $0["signature_ok"] == .bool(true) })
        #expect(second.counters.queued == 0)
    }

    @Test("a full spool drops the oldest rows and counts them")
    func overflow() throws {
        let deadSink = WebhookSink(name: "soc-webhook", url: "http://127.0.0.1:\(freePort())/hook", secret: secret,
                                   poster: HTTPPoster(timeoutSeconds: 2, connectTimeoutSeconds: 1))
        // Long backoff: after the first refused connection the sink waits, so rows stay put.
        var options = AlertRouter.Options(capacity: 5, backoff: Backoff(base: 60, cap: 60), fold: .off)
        options.batchSize = 1
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [deadSink], options: options, logger: .discarding)
        for n in 1...9 { try router.submit(sampleAlert(n, user: "u\(n)")) }
        let counters = router.counters
        #expect(counters.overflowed == 4)
        #expect(counters.queued == 5)
        router.shutdown()

        // The five newest are the ones kept.
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue)
        let reopened = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: fastOptions, logger: .discarding)
        defer { reopened.shutdown() }
        #expect(waitUntil(seconds: 20) { reopened.counters.delivered == 5 })
        #expect(Set(ids(receiver.accepted())) == Set((5...9).map { sampleAlert($0, user: "u\($0)").id }))
    }

    @Test("a burst for one user and address is folded into one alert with a count; drain sends it at once")
    func burstFolding() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue)
        // A window far longer than the test: only `drain` can release the folded alert.
        let options = AlertRouter.Options(backoff: Backoff(base: 0.05, cap: 0.2), fold: FoldPolicy(limit: 2, window: 3600))
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: options, logger: .discarding)
        defer { router.shutdown() }
        for n in 1...40 { try router.submit(sampleAlert(n, user: "mallory", ip: "192.0.2.66")) }
        try router.submit(sampleAlert(1, user: "mallory", ip: "192.0.2.67"))
        #expect(waitUntil(seconds: 20) { router.counters.delivered == 3 })
        #expect(router.counters.folded == 37)
        #expect(router.counters.queued == 1)
        router.drain(seconds: 10)
        #expect(router.counters.delivered == 4)
        #expect(router.counters.queued == 0)
        let bodies = receiver.accepted().compactMap { $0["body"]?["data"] }
        #expect(bodies.count == 4)
        let counts = bodies.compactMap { $0["count"]?.numberValue }
        #expect(counts.reduce(0, +) == 41)
        #expect(counts.max() == 38)
        #expect(bodies.filter { $0["ip"]?.stringValue == "192.0.2.66" }.count == 3)
    }

    @Test("a folded alert goes out by itself when its window closes")
    func foldWindowCloses() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: secretValue)
        let options = AlertRouter.Options(backoff: Backoff(base: 0.05, cap: 0.2), fold: FoldPolicy(limit: 1, window: 0.5))
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [webhook(receiver)], options: options, logger: .discarding)
        defer { router.shutdown() }
        for n in 1...5 { try router.submit(sampleAlert(n)) }
        #expect(waitUntil(seconds: 15) { router.counters.delivered == 2 })
        let counts = receiver.accepted().compactMap { $0["body"]?["data"]?["count"]?.numberValue }
        #expect(counts.sorted() == [1, 4])
    }

    @Test("the spool file is in WAL mode and keeps rows across connections")
    func spoolFile() throws {
        let spool = try Spool(path: spoolPath, capacity: 10)
        let inserted = try spool.enqueue(sampleAlert(), placements: [(sink: "a", placement: .now), (sink: "b", placement: .now)], now: 1)
        #expect(inserted == Spool.EnqueueResult(inserted: 2, folded: 0, overflowed: 0))
        spool.close()
        let other = try SQLiteConnection(path: spoolPath)
        #expect(try other.query("PRAGMA journal_mode").first?.first?.text == "wal")
        #expect(try other.query("SELECT count(*) FROM alert_spool").first?.first?.integer == 2)
        other.close()
        let reopened = try Spool(path: spoolPath, capacity: 10)
        defer { reopened.close() }
        #expect(reopened.count == 2)
        let rows = try reopened.due(now: 2, sinks: ["b"], limit: 10) { _ in }
        #expect(rows.map(\.alert) == [sampleAlert()])
    }

    @Test("the same alert submitted twice is queued once per sink")
    func duplicateSubmit() throws {
        let deadSink = WebhookSink(name: "soc-webhook", url: "http://127.0.0.1:\(freePort())/hook", secret: secret)
        let ecsPath = directory.appendingPathComponent("alerts.ndjson").path
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [deadSink, ECSSink(name: "siem", destination: .file(ecsPath))],
                                     options: AlertRouter.Options(backoff: Backoff(base: 60, cap: 60), fold: .off), logger: .discarding)
        defer { router.shutdown() }
        // In one batch: two separate submits could see the file sink deliver between
        // them, and a delivered alert submitted again is queued again (at least once).
        // Submitted again while still queued, as after a restart: the abandoned-router test.
        try router.submit([sampleAlert(7), sampleAlert(7)])
        #expect(waitUntil(seconds: 10) { router.counters.delivered == 1 })
        #expect(router.counters.queued == 1)
        let lines = try String(contentsOfFile: ecsPath, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
    }

    @Test("two sinks with one name are refused")
    func duplicateSinkNames() throws {
        let sink = ECSSink(name: "same", destination: .standardOutput)
        #expect(throws: AlertRouterError.self) {
            _ = try AlertRouter(spoolPath: self.spoolPath, sinks: [sink, sink], logger: .discarding)
        }
    }
}
