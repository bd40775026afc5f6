import IPSightCore
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import AlertSinks

/// The router's retries, pauses and restarts on its in-memory twins: a scripted
/// `CollectingAlertSink` and a `ManualClock` that only the test moves, so each
/// backoff is crossed exactly and nothing waits for real seconds to pass.
@Suite("Alert routing on an in-memory sink and a manual clock")
final class RouterTwinTests {
    let directory: URL

    init() throws { directory = try temporaryDirectory() }

    deinit { try? FileManager.default.removeItem(at: directory) }

    var spoolPath: String { directory.appendingPathComponent("spool.sqlite").path }

    /// One delivery at a time, so the order of attempts is the script's.
    func options(_ clock: ManualClock, backoff: Backoff) -> AlertRouter.Options {
        .init(backoff: backoff, fold: .off, batchSize: 1, concurrency: 1, clock: clock)
    }

    @Test func aFailedAlertWaitsOutItsBackoffOnTheClockThenIsDeliveredOnce() throws {
        let clock = ManualClock()
        let first = sampleAlert(1)
        let sink = CollectingAlertSink { alert, attempt in
            alert.id == first.id && attempt == 1 ? .fail(.retryable) : .deliver
        }
        // The first retry waits between 5 and 10 s.
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink],
                                     options: options(clock, backoff: Backoff(base: 10, cap: 10)), logger: .discarding)
        defer { router.shutdown() }
        try router.submit(first)
        #expect(waitUntil(seconds: 10) { router.counters.retried == 1 })
        // 4 s later another alert wakes the router: it is delivered, the failed one is not due yet.
        clock.advance(by: 4)
        try router.submit(sampleAlert(2))
        #expect(waitUntil(seconds: 10) { sink.delivered.map(\.id) == [sampleAlert(2).id] })
        #expect(sink.attempts(of: first.id) == 1)
        // Past the longest backoff it goes.
        clock.advance(by: 7)
        try router.submit(sampleAlert(3))
        #expect(waitUntil(seconds: 10) { sink.delivered.count == 3 })
        #expect(sink.attempts(of: first.id) == 2)
        #expect(Set(sink.delivered.map(\.id)).count == 3, "each alert once")
        // The router records an outcome just after the sink returns.
        #expect(waitUntil(seconds: 10) { router.counters.delivered == 3 })
    }

    @Test func aSinkThatFailsEverythingIsPausedThenProbedOnce() throws {
        let clock = ManualClock()
        let healthy = Atomic<Bool>(false)
        let sink = CollectingAlertSink { _, _ in healthy.load(ordering: .relaxed) ? .deliver : .fail(.retryable) }
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink],
                                     options: options(clock, backoff: Backoff(base: 30, cap: 30)), logger: .discarding)
        defer { router.shutdown() }
        for n in 1...10 { try router.submit(sampleAlert(n, user: "user\(n)")) }
        // Three different alerts failing in a row pause the sink; the other seven wait.
        #expect(waitUntil(seconds: 10) { sink.attempts == 3 })
        usleep(300_000)
        #expect(sink.attempts == 3, "nothing is sent to a paused sink")
        healthy.store(true, ordering: .relaxed)
        // Once the pause is over (at most 30 s on the clock) one probe succeeds and the rest follow.
        clock.advance(by: 31)
        try router.submit(sampleAlert(11, user: "user11"))
        #expect(waitUntil(seconds: 20) { sink.delivered.count == 11 })
        #expect(Set(sink.delivered.map(\.id)).count == 11)
        #expect(sink.attempts == 3 + 11)
    }

    @Test func aPermanentFailureIsDroppedNotRetried() throws {
        let clock = ManualClock()
        let refused = sampleAlert(1)
        let sink = CollectingAlertSink { alert, _ in alert.id == refused.id ? .fail(.permanent) : .deliver }
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink],
                                     options: options(clock, backoff: Backoff(base: 1, cap: 1)), logger: .discarding)
        defer { router.shutdown() }
        try router.submit([refused, sampleAlert(2)])
        #expect(waitUntil(seconds: 10) { router.counters.dropped == 1 && router.counters.delivered == 1 })
        clock.advance(by: 60)
        try router.submit(sampleAlert(3))
        #expect(waitUntil(seconds: 10) { router.counters.delivered == 2 })
        #expect(sink.attempts(of: refused.id) == 1)
        #expect(waitUntil(seconds: 10) { router.counters.queued == 0 })
    }

    @Test func whatASinkNeverTookIsDeliveredOnceAfterARestart() throws {
        let clock = ManualClock()
        let hanging = CollectingAlertSink { _, _ in .hang }
        let first = try AlertRouter(spoolPath: spoolPath, sinks: [hanging],
                                    options: .init(fold: .off, shutdownGrace: 0.5, clock: clock), logger: .discarding)
        try first.submit((1...5).map { sampleAlert($0) })
        #expect(waitUntil(seconds: 10) { hanging.attempts >= 1 })
        // Shutdown cancels the hanging deliveries: not attempts, and still spooled.
        first.shutdown()
        #expect(hanging.delivered.isEmpty)

        let sink = CollectingAlertSink()
        let second = try AlertRouter(spoolPath: spoolPath, sinks: [sink], options: options(clock, backoff: Backoff()),
                                     logger: .discarding)
        defer { second.shutdown() }
        #expect(waitUntil(seconds: 10) { sink.delivered.count == 5 })
        #expect(sink.delivered.map(\.id).sorted() == (1...5).map { sampleAlert($0).id }.sorted())
        #expect(waitUntil(seconds: 10) { second.counters.queued == 0 })
    }

    /// Two agents' routers holding the same alerts (both read the same logins) and
    /// sharing delivery claims: each alert reaches the receiver once, whichever
    /// agent sends it; an alert another agent holds waits until it is delivered.
    @Test func twoRoutersSharingClaimsDeliverEachAlertOnce() throws {
        let claims = MemoryDeliveryClaims()
        // A's receiver refuses its first try of alert 1: A holds that claim, undelivered.
        let first = sampleAlert(1)
        let sinkA = CollectingAlertSink(name: "soc") { alert, attempt in
            alert.id == first.id && attempt == 1 ? .fail(.retryable) : .deliver
        }
        let sinkB = CollectingAlertSink(name: "soc")
        func options(_ agent: String) -> AlertRouter.Options {
            .init(backoff: Backoff(base: 0.4, cap: 0.4), fold: .off, batchSize: 1, concurrency: 1,
                  claims: claims.agent(agent), claimRecheck: 0.05)
        }
        let a = try AlertRouter(spoolPath: directory.appendingPathComponent("a.sqlite").path, sinks: [sinkA],
                                options: options("a"), logger: .discarding)
        defer { a.shutdown() }
        try a.submit(first)
        #expect(waitUntil(seconds: 10) { a.counters.retried == 1 })
        let b = try AlertRouter(spoolPath: directory.appendingPathComponent("b.sqlite").path, sinks: [sinkB],
                                options: options("b"), logger: .discarding)
        defer { b.shutdown() }
        let alerts = (1...20).map { sampleAlert($0) }
        try b.submit(alerts)
        try a.submit(Array(alerts.dropFirst()))
        #expect(waitUntil(seconds: 10) { a.counters.queued == 0 && b.counters.queued == 0 })
        let sent = (sinkA.delivered + sinkB.delivered).map(\.id)
        #expect(sent.count == 20 && Set(sent) == Set(alerts.map(\.id)), "each alert once: \(sent)")
        #expect(sinkA.delivered.map(\.id).contains(first.id), "the holder delivered the one it held")
        #expect(a.counters.delivered + b.counters.delivered == 20)
        #expect(a.counters.claimedElsewhere + b.counters.claimedElsewhere == 20)
        // The same login read by two agents from different places is the same alert.
        var moved = first
        moved.id = "read-elsewhere"
        #expect(MemoryDeliveryClaims.key(moved, sink: "soc") == MemoryDeliveryClaims.key(first, sink: "soc"))
        #expect(MemoryDeliveryClaims.key(first, sink: "soc") != MemoryDeliveryClaims.key(sampleAlert(2), sink: "soc"))
    }

    /// At shutdown, an alert another agent holds is asked about once and stays
    /// queued for the next start; the drain does not spin on it until its deadline.
    @Test func aDrainLeavesAnAlertHeldElsewhereQueued() throws {
        let claims = MemoryDeliveryClaims()
        let alert = sampleAlert(1)
        #expect(claims.agent("other").claim(alert, sink: "soc") == .mine)
        let sink = CollectingAlertSink(name: "soc")
        let router = try AlertRouter(spoolPath: spoolPath, sinks: [sink],
                                     options: .init(fold: .off, claims: claims.agent("me"), claimRecheck: 3600),
                                     logger: .discarding)
        defer { router.shutdown() }
        try router.submit(alert)
        let started = Date()
        router.drain(seconds: 5)
        #expect(Date().timeIntervalSince(started) < 2, "the drain ends once the held alert was asked about")
        #expect(sink.delivered.isEmpty)
        #expect(router.counters.queued == 1)
    }
}
