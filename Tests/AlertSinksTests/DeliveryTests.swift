import IPSightCore
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import AlertSinks

/// Delivery against receivers that are slow or failing on some alerts only: a real
/// HTTP receiver on 127.0.0.1 (`ScriptedWebhookReceiver`) that holds or refuses
/// chosen alerts. Serialized: the machine's two cores are shared.
@Suite("Alert delivery with slow and failing receivers", .serialized)
final class DeliveryTests {
    let directory: URL

    init() throws {
        directory = try temporaryDirectory()
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var spoolPath: String { directory.appendingPathComponent("spool.sqlite").path }

    func sink(_ receiver: ScriptedWebhookReceiver, timeout: Double) -> WebhookSink {
        WebhookSink(name: "soc", url: receiver.url, secret: nil,
                    poster: HTTPPoster(timeoutSeconds: timeout, connectTimeoutSeconds: 2))
    }

    @Test("one alert whose delivery hangs does not hold up the others")
    func hangingAlertDoesNotBlockTheRest() throws {
        let stuck = sampleAlert(1, user: "stuck")
        let receiver = try ScriptedWebhookReceiver { id, _ in id == stuck.id ? .hang : .ok }
        defer { receiver.stop() }
        // A timeout longer than the test: the hanging delivery stays in flight throughout.
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 120)],
                                     options: .init(backoff: Backoff(base: 0.2, cap: 5), fold: .off), logger: .discarding)
        defer { router.shutdown() }
        try router.submit(stuck)
        #expect(receiver.wait(seconds: 20) { !$0.isEmpty }.first?.id == stuck.id, "the oldest alert goes first")
        let others = (2...10).map { sampleAlert($0, user: "user\($0)") }
        for alert in others { try router.submit(alert) }
        #expect(waitUntil(seconds: 20) { router.counters.delivered == others.count })
        let answered = receiver.requests().filter { $0.status == 200 }.map(\.id)
        #expect(answered.sorted() == others.map(\.id).sorted(), "each of the others delivered once")
        #expect(receiver.requests(for: stuck.id).count == 1 && receiver.requests(for: stuck.id)[0].status == nil,
                "the hanging delivery is still waiting")
        #expect(router.counters.queued == 1)
    }

    @Test("an alert that keeps failing backs off on its own while the others are delivered")
    func failingAlertBacksOffAlone() throws {
        let bad = sampleAlert(1, user: "bad")
        // A receiver slower than the sink's timeout, for one alert only.
        let receiver = try ScriptedWebhookReceiver { id, _ in id == bad.id ? .hang : .ok }
        defer { receiver.stop() }
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 1)],
                                     options: .init(backoff: Backoff(base: 0.5, cap: 60), fold: .off), logger: .discarding)
        defer { router.shutdown() }
        try router.submit(bad)
        let others = (2...10).map { sampleAlert($0, user: "user\($0)") }
        for alert in others { try router.submit(alert) }
        #expect(waitUntil(seconds: 20) { router.counters.delivered == others.count })
        // Later alerts go out as they come, however often the bad one has failed.
        #expect(waitUntil(seconds: 20) { router.counters.retried >= 2 })
        let late = (11...15).map { sampleAlert($0, user: "user\($0)") }
        for alert in late { try router.submit(alert) }
        #expect(waitUntil(seconds: 20) { router.counters.delivered == others.count + late.count })
        let answered = receiver.requests().filter { $0.status == 200 }.map(\.id)
        #expect(answered.sorted() == (others + late).map(\.id).sorted(), "each delivered once")
        #expect(router.counters.queued == 1, "the failing alert stays queued")
    }

    @Test("a failed alert's backoff grows with its own attempts and is kept across a restart")
    func perAlertBackoffSurvivesRestart() throws {
        let bad = sampleAlert(1, user: "bad")
        let receiver = try ScriptedWebhookReceiver { id, _ in id == bad.id ? .init(status: 503) : .ok }
        defer { receiver.stop() }
        // Ceilings 0.4, 0.8, 1.6, 3.2, 6.4 s; a delay is at least half its ceiling.
        let options = AlertRouter.Options(backoff: Backoff(base: 0.4, cap: 60), fold: .off)
        do {
            let first = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 5)], options: options, logger: .discarding)
            try first.submit(bad)
            try first.submit(sampleAlert(2, user: "good"))
            #expect(receiver.wait(seconds: 30) { $0.filter { $0.id == bad.id && $0.status != nil }.count >= 4 }
                .filter { $0.id == bad.id }.count >= 4)
            first.shutdown()
        }
        #expect(receiver.requests(for: sampleAlert(2, user: "good").id).map(\.status) == [200])
        let before = receiver.requests(for: bad.id)
        #expect(before.count == 4, "\(before.map(\.arrived))")
        let second = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 5)], options: options, logger: .discarding)
        defer { second.shutdown() }
        let all = receiver.wait(seconds: 30) { $0.filter { $0.id == bad.id && $0.status != nil }.count >= 6 }
            .filter { $0.id == bad.id }.map(\.arrived)
        try #require(all.count >= 6, "\(all)")
        // The fifth attempt waits out the fourth's delay (at least 1.6 s), saved in the
        // spool; the sixth waits at least half the fifth ceiling (3.2 s), counted from
        // the alert's own attempts, not from a fresh start.
        #expect(all[4] - all[3] >= 1.55, "\(all)")
        #expect(all[5] - all[4] >= 3.15, "\(all)")
    }

    @Test("shutdown with a hanging receiver returns by the drain deadline; the alert stays queued and is sent after reopening")
    func drainDeadlineCancelsHangingDelivery() throws {
        let alert = sampleAlert(1)
        let release = Atomic<Bool>(false)
        let receiver = try ScriptedWebhookReceiver { _, _ in release.load(ordering: .relaxed) ? .ok : .hang }
        defer { receiver.stop() }
        let options = AlertRouter.Options(backoff: Backoff(base: 0.2, cap: 1), fold: .off)
        do {
            // A sink timeout far past the drain: only cancelling the request ends it in time.
            let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 60)], options: options, logger: .discarding)
            try router.submit(alert)
            #expect(receiver.wait(seconds: 20) { !$0.isEmpty }.count == 1, "the delivery is in flight")
            let started = Date()
            router.drain(seconds: 1)
            router.shutdown()
            let took = Date().timeIntervalSince(started)
            // The drain's second, then the cancel: well under the default grace of a second more.
            #expect(took < 2.5, "drain and shutdown took \(took) s")
            #expect(router.counters.delivered == 0)
        }
        let spool = try Spool(path: spoolPath, capacity: 10)
        #expect(spool.count == 1, "the cancelled alert is still queued")
        spool.close()
        release.store(true, ordering: .relaxed)
        let reopened = try AlertRouter(spoolPath: spoolPath, sinks: [sink(receiver, timeout: 10)], options: options, logger: .discarding)
        defer { reopened.shutdown() }
        #expect(waitUntil(seconds: 20) { reopened.counters.delivered == 1 })
        #expect(receiver.requests(for: alert.id).compactMap(\.status) == [200], "delivered once after reopening")
        #expect(reopened.counters.queued == 0)
    }

    @Test("a batch is queued in one transaction; an abandoned router loses nothing acknowledged and queues nothing twice")
    func batchSurvivesAbandonedRouter() throws {
        // Nothing listens: rows stay queued, so the spool shows exactly what was acknowledged.
        let dead = WebhookSink(name: "soc", url: "http://127.0.0.1:\(freePort())/hook", secret: nil,
                               poster: HTTPPoster(timeoutSeconds: 1, connectTimeoutSeconds: 1))
        let options = AlertRouter.Options(backoff: Backoff(base: 60, cap: 60), fold: .off)
        let acknowledged = (1...300).map { sampleAlert($0, user: "user\($0 % 17)") }
        // Abandoned without drain or shutdown, as a crash would leave it (its
        // connection is still open, its threads still running).
        let abandoned = try AlertRouter(spoolPath: spoolPath, sinks: [dead], options: options, logger: .discarding)
        for batch in stride(from: 0, to: acknowledged.count, by: 100) {
            try abandoned.submit(Array(acknowledged[batch..<(batch + 100)]))
        }
        // A batch whose transaction a crash interrupted: rows written, never committed.
        let interrupted = (301...400).map { sampleAlert($0, user: "late\($0)") }
        let raw = try SQLiteConnection(path: spoolPath)
        try raw.execute("BEGIN IMMEDIATE")
        for alert in interrupted {
            try raw.execute("INSERT INTO alert_spool(sink, alert_id, fold_key, alert, next_at, queued_at) VALUES ('soc', ?, '', '{}', 0, 0)",
                            [.text(alert.id)])
        }
        raw.close()

        let reopened = try AlertRouter(spoolPath: spoolPath, sinks: [dead], options: options, logger: .discarding)
        defer { reopened.shutdown() }
        // After a restart the agent submits the unacknowledged batch again, and an acknowledged one too.
        try reopened.submit(interrupted)
        try reopened.submit(Array(acknowledged[0..<100]))
        let check = try SQLiteConnection(path: spoolPath)
        defer { check.close() }
        let ids = try check.query("SELECT alert_id FROM alert_spool").map(\.[0].text)
        #expect(ids.count == acknowledged.count + interrupted.count, "every alert queued once")
        #expect(Set(ids) == Set((acknowledged + interrupted).map(\.id)))
        #expect(reopened.counters.queued == ids.count)
    }
}
