import Agent
import Detection
import AgentAPI
import AgentClient
import AlertSinks
import Fleet
@testable import FleetSync
import Foundation
import IPSightCore
import Observability
import Server
import Testing
import TestSupport

/// Agents of one fleet sharing their history through the test PostgreSQL: each
/// with its own state directory and host name, in this one process.
@Suite(.enabled(if: !TestPostgres.skipped, "IPSIGHT_SKIP_POSTGRES=1"))
struct FleetSyncTests {
    static func count(_ fleet: TestFleet, _ sql: String = "SELECT count(*) FROM logins") -> Int {
        Int((try? fleet.superuser(sql))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
    }

    /// Logins of distinct users from distinct addresses, named by `prefix`.
    static func logins(_ prefix: String, _ range: Range<Int>) -> [(user: String, ip: String)] {
        range.map { ("\(prefix)\($0)", "198.51.\($0 / 250).\($0 % 250 + 1)") }
    }

    /// A migrated fleet database and two agents on it (host-a and host-b), running.
    static func runningPair(_ options: FleetSyncService.Options = FleetSyncService.Options()) async throws
            -> (TestFleet, FleetAgent, FleetAgent) {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let a = try FleetAgent(fleet, host: "host-a", role: "ipsight_test_agent1", options: options)
        let b = try FleetAgent(fleet, host: "host-b", role: "ipsight_test_agent2", options: options)
        a.start()
        b.start()
        return (fleet, a, b)
    }

    @Test func aLoginOnOneHostIsKnownOnTheOtherWithinFiveSeconds() async throws {
        let (fleet, a, b) = try await Self.runningPair()
        #expect(!b.knows(user: "carol", ip: "203.0.113.7"))
        a.login([("carol", "203.0.113.7")])
        #expect(await waitUntil(seconds: 5) { b.knows(user: "carol", ip: "203.0.113.7") })
        b.login([("dave", "203.0.113.9")])
        #expect(await waitUntil(seconds: 5) { a.knows(user: "dave", ip: "203.0.113.9") })

        // Kept in the other host's store as learnt (a restart keeps it, the retrainer
        // learns from it), and never shared back as its own.
        #expect(try b.localStore().learnedCount(user: "carol", ip: "203.0.113.7") == 1)
        #expect(try a.ownLogins() == 1 && b.ownLogins() == 1)
        #expect(await waitUntil(seconds: 5) { b.agent.fleet?.snapshot.received == 1 && a.agent.fleet?.snapshot.received == 1 })
        #expect(Self.count(fleet) == 2)

        // Propagation over 200 logins on A, one every 25 ms: from the line appended
        // to A's journal to B deciding with it.
        let logins = Self.logins("p", 0..<200)
        var appended: [Double] = []
        var known = [Double?](repeating: nil, count: logins.count)
        var next = 0
        let deadline = Clock.now + 30
        while Clock.now < deadline && known.contains(where: { $0 == nil }) {
            if next < logins.count && (next == 0 || Clock.now - appended[next - 1] >= 0.025) {
                a.login([logins[next]])
                appended.append(Clock.now)
                next += 1
            }
            for k in 0..<next where known[k] == nil && b.knows(user: logins[k].user, ip: logins[k].ip) {
                known[k] = Clock.now
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let latencies = zip(appended, known).compactMap { start, end in end.map { $0 - start } }.sorted()
        #expect(latencies.count == logins.count, "every login reached B")
        let p50 = latencies[latencies.count / 2], p99 = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        print("fleet propagation over \(latencies.count) logins: p50 \(Format.fixed(p50, 3)) s, p99 \(Format.fixed(p99, 3)) s, max \(Format.fixed(latencies.last!, 3)) s")
        #expect(p99 < 5)
        #expect(await waitUntil(seconds: 10) { Self.count(fleet) == 202 })
        try await a.stop()
        try await b.stop()
    }

    @Test func uploadsAreExactlyOnceAcrossSyncRestarts() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let a = try FleetAgent(fleet, host: "host-a", role: "ipsight_test_agent1")
        a.start(withSync: false)
        a.startSync()
        var total = 0
        for round in 0..<4 {
            a.login(Self.logins("r\(round)-", 0..<150))
            total += 150
            // Stopped mid-stream, some of the round uploaded and some not.
            try await Task.sleep(for: .milliseconds(400 + 300 * round))
            try await a.stopSync()
            if round == 2 {
                // As after a crash between an upload's commit and saving the position:
                // everything is sent again, and the keys make it harmless.
                try a.localStore().save(["fleet:uploaded": "0"])
            }
            a.startSync()
        }
        #expect(await waitUntil(seconds: 20) { (try? a.ownLogins()) == total && Self.count(fleet) == total })
        #expect(await waitUntil(seconds: 5) { a.agent.fleet?.snapshot.uploadBacklog == 0 })
        try await a.stopSync()
        #expect(Self.count(fleet) == total)
        #expect(Self.count(fleet, "SELECT count(DISTINCT local_sequence) FROM logins WHERE host_name = 'host-a'") == total)
        #expect(try a.localStore().positions()["fleet:uploaded"].flatMap { Int($0) } ?? 0 >= total)
        try await a.stop()
    }

    @Test func catchUpReadsEachLoginOnceAcrossRestartsAndARestartKeepsIt() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let a = try FleetAgent(fleet, host: "host-a", role: "ipsight_test_agent1")
        a.start()
        let logins = Self.logins("c", 0..<120)
        a.login(logins)
        #expect(await waitUntil(seconds: 10) { Self.count(fleet) == 120 })

        // Small pages, and a sync stopped part way through them.
        var options = FleetSyncService.Options()
        options.pageSize = 7
        let b = try FleetAgent(fleet, host: "host-b", role: "ipsight_test_agent2", options: options)
        b.start(withSync: false)
        b.startSync()
        try await Task.sleep(for: .milliseconds(150))
        try await b.stopSync()
        b.startSync()
        #expect(await waitUntil(seconds: 10) {
            (try? b.localStore().count()) == logins.count && logins.allSatisfy { b.knows(user: $0.user, ip: $0.ip) }
        })
        // Rounds go on: nothing is read twice.
        try await Task.sleep(for: .seconds(1.5))
        #expect(try b.localStore().count() == logins.count)
        #expect(try b.localStore().positions()["fleet:read"] != nil)
        try await b.stopSync()
        try await b.stop()

        // Started again, without the database: what B learnt from A is still known.
        let again = try FleetAgent(fleet, host: "host-b", role: "ipsight_test_agent2", reopening: b)
        #expect(logins.allSatisfy { again.knows(user: $0.user, ip: $0.ip) })
        try await a.stop()
    }

    @Test func aCallThatNeverAnswersGivesUpOnTime() async throws {
        // Measured on the sync's own threads, as the service runs: the test runner's
        // shared pool may be held by other suites for seconds.
        let (elapsed, error) = await withTaskExecutorPreference(FleetSyncService.threads) { () async -> (Double, (any Error)?) in
            let start = Clock.now
            do {
                _ = try await withDeadline(0.3) { try await Task.sleep(for: .seconds(60)); return 1 }
                return (Clock.now - start, nil)
            } catch {
                return (Clock.now - start, error)
            }
        }
        #expect(error is FleetError)
        #expect(elapsed < 2)
        #expect(try await withDeadline(5) { 42 } == 42)
    }

    /// The database stopped mid-stream and started again: the agent decides
    /// throughout, says it is degraded, and every login ends up in the database once.
    /// On a server of the test's own, since stopping the shared one would stop every test.
    @Test(.enabled(if: TestPostgres.ownServer, "a server the test can stop"))
    func anOutageLosesNothingAndDoublesNothing() async throws {
        try await TestPostgres.withOwnServer { fleet, instance in
            var options = FleetSyncService.Options()
            options.callTimeout = 2
            options.maxBackoff = 4
            let a = try FleetAgent(fleet, host: "host-a", role: "ipsight_test_agent1", options: options)
            a.start()
            let metrics = PrometheusMetrics(help: AgentStats.help.merging(ServerMetrics.help) { a, _ in a },
                                            timerBuckets: AgentStats.timerBuckets.merging(ServerMetrics.timerBuckets) { a, _ in a })
            let api = AgentAPI(agent: a.agent, config: a.agent.config, metrics: metrics)
            try api.start()
            defer { api.stop() }
            func status() throws -> JSONValue? {
                let reply = try AgentClient(endpoint: .unix(a.dir.file("api.sock")), timeout: 10).request("GET", "/v1/status")
                return try JSONValue.parse(reply.body)["fleet"]
            }

            a.login(Self.logins("before", 0..<100))
            #expect(await waitUntil(seconds: 10) { Self.count(fleet) == 100 })
            #expect(await waitUntil(seconds: 5) { (try? status())?["state"]?.stringValue == "connected" })
            let connected = try status()
            #expect(connected?["host_name"]?.stringValue == "host-a")
            #expect(connected?["last_error"] == .null)
            #expect(connected?["seconds_since_sync"]?.numberValue.map { $0 <= 5 } == true)

            // pg_ctl's fast stop: the test server commits asynchronously (synchronous_commit
            // = off), and an immediate stop would lose rows it had acknowledged, as a real
            // server does only when it runs with synchronous commits off.
            try TestPostgres.run(instance.stop.map { $0 == "immediate" ? "fast" : $0 })
            let during = Self.logins("during", 0..<100)
            a.login(during)
            // Decided and learnt locally while the database is away.
            #expect(await waitUntil(seconds: 10) { a.knows(user: during.last!.user, ip: during.last!.ip) })
            #expect(await waitUntil(seconds: 15) { (try? status())?["state"]?.stringValue == "degraded" })
            #expect(await waitUntil(seconds: 10) { (try? status())?["upload_backlog"]?.numberValue == 100 })
            let degraded = try status()
            #expect(degraded?["last_error"]?.stringValue?.isEmpty == false)
            #expect(try a.ownLogins() == 200)

            try TestPostgres.run(instance.start)
            a.login(Self.logins("after", 0..<50))
            #expect(await waitUntil(seconds: 30) { Self.count(fleet) == 250 })
            #expect(await waitUntil(seconds: 10) { (try? status())?["state"]?.stringValue == "connected" })
            #expect(try status()?["upload_backlog"]?.numberValue == 0)
            #expect(Self.count(fleet, "SELECT count(DISTINCT local_sequence) FROM logins") == 250)
            try await a.stop()
    
        }
    }

    /// Password spraying spread over hosts: three accounts tried on each of two
    /// hosts (under the threshold of five on either), then a success. The host that
    /// sees the success alerts once, with the fleet's count; a restart keeps it.
    @Test func sprayingAcrossHostsRaisesOneStuffingAlert() async throws {
        let (fleet, a, first) = try await Self.runningPair()
        var b = first
        let sprayer = "192.0.2.66"
        a.fail((0..<3).map { ("a-user\($0)", sprayer) })
        b.fail((0..<3).map { ("b-user\($0)", sprayer) })
        #expect(await waitUntil(seconds: 10) { Self.count(fleet, "SELECT count(*) FROM failures") == 6 })
        // Each host has caught up the other's three (its own are not read back).
        #expect(await waitUntil(seconds: 10) { b.agent.fleet?.snapshot.received == 3 && a.agent.fleet?.snapshot.received == 3 })
        b.login([("victim", sprayer)])
        #expect(await waitUntil(seconds: 5) { !b.stuffingAlerts.isEmpty })
        #expect(b.stuffingAlerts == ["victim \(sprayer)"])
        #expect(a.stuffingAlerts.isEmpty, "one alert: the host that saw the success")
        // A success from an address that failed on one host only stays below the threshold.
        a.fail([("c-user", "192.0.2.77")])
        b.login([("other", "192.0.2.77")])
        try await Task.sleep(for: .seconds(2))
        #expect(b.stuffingAlerts.count == 1)

        // Restarted, B still counts the fleet's failures from its store.
        try await b.stop()
        b = try FleetAgent(fleet, host: "host-b", role: "ipsight_test_agent2", reopening: b)
        b.start(withSync: false)
        b.login([("second-victim", sprayer)])
        #expect(await waitUntil(seconds: 5) { !b.stuffingAlerts.isEmpty })
        #expect(b.stuffingAlerts == ["second-victim \(sprayer)"])
        try await a.stop()
        try await b.stop()
    }

    /// A verdict given on one host reaches the others: a login said to be an
    /// intruder's is forgotten everywhere, one said to be the user's is known
    /// everywhere; no verdict comes back to its host or is logged twice.
    @Test func feedbackGivenOnOneHostIsAppliedOnTheOthers() async throws {
        let (fleet, a, b) = try await Self.runningPair()
        a.login([("erin", "203.0.113.50")])
        #expect(await waitUntil(seconds: 5) { b.knows(user: "erin", ip: "203.0.113.50") })

        func give(_ verdict: FeedbackVerdict, on agent: FleetAgent, _ user: String, _ ip: String) throws {
            _ = try agent.localStore().apply(verdict, user: user, ip: ip, service: "sshd", detector: agent.agent.detector,
                                             retention: agent.agent.config.retention)
        }
        try give(.compromised, on: a, "erin", "203.0.113.50")
        #expect(!a.knows(user: "erin", ip: "203.0.113.50"))
        #expect(await waitUntil(seconds: 5) { !b.knows(user: "erin", ip: "203.0.113.50") }, "forgotten on B too")
        #expect(try b.localStore().learnedCount(user: "erin", ip: "203.0.113.50") == 0)

        #expect(!a.knows(user: "frank", ip: "198.51.100.80"))
        try give(.legitimate, on: b, "frank", "198.51.100.80")
        #expect(await waitUntil(seconds: 5) { a.knows(user: "frank", ip: "198.51.100.80") }, "known on A")
        #expect(try a.localStore().learnedCount(user: "frank", ip: "198.51.100.80") >= 1)

        try await Task.sleep(for: .seconds(1.5))
        #expect(Self.count(fleet, "SELECT count(*) FROM feedback") == 2)
        #expect(Self.count(fleet, "SELECT count(*) FROM feedback WHERE service = 'sshd'") == 2)
        #expect(try a.localStore().loggedFeedbackCount(after: 0) == 1 && b.localStore().loggedFeedbackCount(after: 0) == 1)
        #expect(!b.knows(user: "erin", ip: "203.0.113.50"), "still forgotten after more rounds")
        try await a.stop()
        try await b.stop()
    }

    /// The fleet database restored from a backup older than what the agents have
    /// seen: the uploader sends again what the restore lost, the reader takes it
    /// without counting it twice, and logins after the restore flow as before.
    @Test func aDatabaseRestoredFromAnOlderBackupLosesAndDoublesNothing() async throws {
        var options = FleetSyncService.Options()
        options.callTimeout = 2
        options.maxBackoff = 2
        options.heartbeatInterval = 2
        let (fleet, a, b) = try await Self.runningPair(options)
        func shared(_ agent: FleetAgent) -> Int {
            (try? agent.localStore().count()).map { $0 - ((try? agent.ownLogins()) ?? 0) } ?? -1
        }
        a.login(Self.logins("early", 0..<50))
        #expect(await waitUntil(seconds: 10) { shared(b) == 50 })
        let dump = TemporaryDirectory()
        defer { dump.remove() }
        try fleet.backup(to: dump.file("fleet.dump"))

        a.login(Self.logins("lost", 0..<30))
        #expect(await waitUntil(seconds: 10) { shared(b) == 80 && Self.count(fleet) == 80 })
        try fleet.restore(from: dump.file("fleet.dump"))
        #expect(Self.count(fleet) == 50, "the backup holds the first 50")

        // A sends the 30 again; B already has them and keeps one copy each.
        #expect(await waitUntil(seconds: 20) { Self.count(fleet) == 80 })
        a.login(Self.logins("after", 0..<10))
        #expect(await waitUntil(seconds: 20) { shared(b) == 90 && Self.count(fleet) == 90 })
        try await Task.sleep(for: .seconds(1.5))
        #expect(shared(b) == 90, "nothing read twice")
        #expect(Self.count(fleet, "SELECT count(DISTINCT local_sequence) FROM logins") == 90)
        #expect(Self.logins("after", 0..<10).allSatisfy { b.knows(user: $0.user, ip: $0.ip) })
        try await a.stop()
        try await b.stop()
    }

    /// A restore into a new cluster: the database's transactions are behind the
    /// saved read cursors, which go back to the start; upload positions past what
    /// the database holds go back to it; positions it covers stay.
    @Test func positionsAheadOfARestoredDatabaseGoBack() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("state.db")
        let store = try ObservationStore(path: path)
        try store.save(["fleet:read": "900:40", "fleet:read-failures": "120:7", "fleet:read-feedback": "950:2",
                        "fleet:uploaded": "80", "fleet:uploaded-failures": "5", "fleet:uploaded-feedback": "3"])
        let history = SharedHistory(path: path, detector: Detector(policy: DecisionPolicy(), model: nil), hostName: "host-a")
        let changes = try await history.reconcile(with: FleetStanding(nextTransaction: 500, logins: 50, failures: 5, feedback: 3))
        #expect(changes.count == 3, "\(changes)")
        let saved = try store.positions()
        #expect(saved["fleet:read"] == "0:0" && saved["fleet:read-feedback"] == "0:0")
        #expect(saved["fleet:read-failures"] == "120:7", "a cursor the database has passed stays")
        #expect(saved["fleet:uploaded"] == "50")
        #expect(saved["fleet:uploaded-failures"] == "5" && saved["fleet:uploaded-feedback"] == "3")
        #expect(try await history.reconcile(with: FleetStanding(nextTransaction: 500, logins: 50, failures: 5, feedback: 3)).isEmpty)
    }

    /// Two agents that read the same logins hold the same alerts: with their
    /// claims in the fleet database each reaches the SOC once; an agent that holds
    /// a claim and dies with it loses nothing once the lease lapses.
    @Test func twoAgentsHoldingTheSameAlertsPageOnce() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let spools = dir.path
        let alerts = (0..<30).map { n in
            Alert(id: "local-\(n)", time: 1_800_000_000 + Double(n), host: "bastion-1", service: "sshd", outcome: .success,
                  user: "user\(n)", ip: "203.0.113.\(n + 1)", decision: .alert, severity: .error, risk: 0.99, dotProduct: -3,
                  summary: "user\(n) logged in from a new network", reasons: [])
        }
        try await fleet.withStore(user: "ipsight_test_agent1", host: "host-a", trainer: false) { storeA in
            try await fleet.withStore(user: "ipsight_test_agent2", host: "host-b", trainer: false) { storeB in
                let soc = (a: CollectingAlertSink(name: "soc"), b: CollectingAlertSink(name: "soc"))
                func router(_ name: String, _ sink: CollectingAlertSink, _ store: FleetStore) throws -> AlertRouter {
                    try AlertRouter(spoolPath: "\(spools)/\(name).sqlite", sinks: [sink],
                                    options: .init(fold: .off, claims: FleetDeliveryClaims(store: store, logger: .discarding),
                                                   claimRecheck: 0.1),
                                    logger: .discarding)
                }
                let a = try router("a", soc.a, storeA), b = try router("b", soc.b, storeB)
                defer { a.shutdown(); b.shutdown() }
                try a.submit(alerts)
                try b.submit(alerts)
                #expect(await waitUntil(seconds: 20) { a.counters.queued == 0 && b.counters.queued == 0 })
                let sent = (soc.a.delivered + soc.b.delivered).map(\.id)
                #expect(sent.count == alerts.count && Set(sent).count == alerts.count, "each once: \(sent.count) sent")
                #expect(a.counters.claimedElsewhere + b.counters.claimedElsewhere == alerts.count)
                #expect(Self.count(fleet, "SELECT count(*) FROM alerts WHERE delivered_at IS NOT NULL") == alerts.count)

                // Host C claimed an alert and died before delivering it: A waits out the lease, then sends it.
                let orphan = Alert(id: "orphan", time: 1_800_000_100, host: "bastion-1", service: "sshd", outcome: .success,
                                   user: "zoe", ip: "198.51.100.9", decision: .alert, severity: .error, risk: 0.99,
                                   dotProduct: -3, summary: "zoe logged in from a new network", reasons: [])
                try await fleet.withStore(user: "ipsight_test_trainer", host: "host-c", trainer: false) { storeC in
                    let claim = try await storeC.claimDelivery(alertKey: FleetDeliveryClaims.key(orphan, sink: "soc"), agent: "host-c")
                    #expect(claim == .mine)
                }
                let short = try AlertRouter(spoolPath: "\(spools)/short.sqlite", sinks: [soc.a],
                                            options: .init(fold: .off, claims: FleetDeliveryClaims(store: storeA, lease: 4, logger: .discarding),
                                                           claimRecheck: 0.2),
                                            logger: .discarding)
                defer { short.shutdown() }
                try short.submit(orphan)
                try await Task.sleep(for: .milliseconds(500))
                #expect(!soc.a.delivered.contains { $0.id == "orphan" }, "held by C within its lease")
                #expect(await waitUntil(seconds: 20) { soc.a.delivered.contains { $0.id == "orphan" } }, "sent once the lease lapsed")
            }
        }
    }
}
