import Fleet
import Foundation
import IPSightCore
import Logging
import PostgresNIO
import Testing
import TestSupport

/// Each test has a database of its own on the one server the process starts.
@Suite(.enabled(if: !TestPostgres.skipped, "IPSIGHT_SKIP_POSTGRES=1"))
struct FleetStoreTests {
    static func logins(_ range: ClosedRange<Int64>, user: String = "alice", address: String = "192.0.2.10") -> [FleetObservation] {
        range.map { FleetObservation(localSequence: $0, user: "\(user)\($0 % 7)", address: address, service: "sshd",
                                     time: 1_800_000_000 + Double($0)) }
    }

    static let model = ModelPublication(
        model: Array((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }),
        hyperparameters: #"{"vector_dim": 64, "epochs": 5}"#, calibration: #"{"bins": [0.1, 0.5]}"#,
        metrics: #"{"auc": 0.97, "validation_logins": 12000}"#, trainedBy: "host-a",
        windowStart: 1_790_000_000, windowEnd: 1_800_000_000)

    @Test func migratingTwiceDoesNothingTheSecondTime() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { store async throws in
            #expect(try await store.schemaVersion() == 0)
            #expect(try await store.migrate() == Array(1...Migrations.latestVersion))
            #expect(try await store.migrate() == [])
            #expect(try await store.schemaVersion() == Migrations.latestVersion)
        }
        #expect(try fleet.superuser("SELECT count(*) FROM schema_migrations") == "\(Migrations.latestVersion)")
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
        let fleet = try TestFleet()
        let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
            for host in ["a", "b", "c"] {
                group.addTask { try await fleet.withStore(host: host) { try await $0.migrate() } }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(applied.sorted() == Array(1...Migrations.latestVersion), "each applied by one of them")
    }

    @Test func aNewerSchemaIsRefused() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        try fleet.superuser("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')")
        await #expect(throws: FleetError("the fleet database is at schema version 999, newer than this ipsight knows (\(Migrations.latestVersion)): upgrade ipsight on this host")) {
            try await fleet.withStore { try await $0.migrate() }
        }
    }

    @Test func aRetriedUploadAddsNothing() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { store async throws in
            try await store.migrate()
            try await store.heartbeat(agent: AgentHeartbeat(hostName: "host-a", version: "1.0", trainer: true))
            #expect(try await store.upload(logins: Self.logins(1...100)) == 100)
            // The outage: the same batch again, and one overlapping the first.
            #expect(try await store.upload(logins: Self.logins(1...100)) == 0)
            #expect(try await store.upload(logins: Self.logins(51...150)) == 50)
            #expect(try await store.upload(failures: Self.logins(1...10)) == 10)
            #expect(try await store.upload(failures: Self.logins(1...10)) == 0)
        }
        // Another host's sequence numbers are its own.
        try await fleet.withStore(host: "host-b") { store async throws in #expect(try await store.upload(logins: Self.logins(1...100)) == 100) }
        #expect(try fleet.superuser("SELECT count(*) FROM logins") == "250")
        #expect(try fleet.superuser("SELECT last_login_sequence FROM agents WHERE host_name = 'host-a'") == "150")
    }

    /// Rows become readable once every transaction older than theirs has ended, in
    /// the whole cluster (the other tests' included): hence the waits.
    @Test func catchUpReadsOnlyWhatIsNew() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let page = try await fleet.withStore(host: "host-b") { store async throws in
            try await store.upload(logins: Self.logins(1...30))
            try await eventually("the upload is readable") { try await store.logins(after: .start).logins.count == 30 }
            let first = try await store.logins(after: .start, limit: 20)
            #expect(first.logins.count == 20)
            let second = try await store.logins(after: first.next)
            #expect(second.logins.count == 10)
            #expect(second.logins.last?.observation == Self.logins(30...30)[0])
            #expect(second.logins.last?.hostName == "host-b")
            #expect(try await store.logins(after: second.next).logins.isEmpty)
            try await store.upload(logins: Self.logins(31...35))
            try await eventually("the second upload is readable") { try await !store.logins(after: second.next).logins.isEmpty }
            return try await store.logins(after: second.next)
        }
        #expect(page.logins.map(\.observation.localSequence) == Array(31...35))
    }

    /// The reason for the (transaction, id) cursor: a transaction that took a lower
    /// id and commits after a later one must still be read, not stepped over.
    @Test func catchUpNeverStepsOverALateCommit() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let (server, database) = (fleet.server, fleet.database)
        let logger = Logger(label: "fleet-test")
        let slow = try await PostgresConnection.connect(
            configuration: .init(unixSocketPath: server.socketPath, username: "ipsight_owner", password: nil, database: database),
            id: 7, logger: logger)
        try await slow.query("BEGIN", logger: logger)
        try await slow.query("""
            INSERT INTO logins (host_name, local_sequence, user_name, address, service, occurred_at)
            VALUES ('slow', 1, 'bob', '198.51.100.7', 'sshd', now())
            """, logger: logger)
        try await fleet.withStore(host: "fast") { store async throws in
            try await store.upload(logins: Self.logins(1...3))
            // The fast rows have higher ids but the slow transaction is still open: nothing is final yet.
            let before = try await store.logins(after: .start)
            #expect(before.logins.isEmpty)
            try await slow.query("COMMIT", logger: logger)
            try await eventually("all four are readable") { try await store.logins(after: before.next).logins.count == 4 }
            let after = try await store.logins(after: before.next)
            #expect(after.logins.map(\.hostName) == ["slow", "fast", "fast", "fast"])
        }
        try await slow.close()
    }

    /// The cursor's order is the numbers', not their text: written by transactions
    /// 8, 9, 10 and 11 (as text "10" < "8"), logins and failures are all read, in
    /// that order, a row at a time.
    @Test func catchUpFollowsTransactionNumbersNotTheirText() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        for table in ["logins", "failures"] {
            try fleet.superuser("""
                INSERT INTO \(table) (tx, host_name, local_sequence, user_name, address, service, occurred_at)
                SELECT t::text::xid8, 'login1', t, 'user' || t, '192.0.2.1', 'sshd', now() FROM generate_series(8, 11) AS t
                """)
        }
        try await fleet.withStore { store async throws in
            for read in [{ try await store.logins(after: $0, limit: 1) }, { try await store.failures(after: $0, limit: 1) }]
                    as [@Sendable (FleetCursor) async throws -> FleetLoginPage] {
                var cursor = FleetCursor.start
                var users: [String] = []
                while true {
                    let page = try await read(cursor)
                    guard let login = page.logins.first else { break }
                    users.append(login.observation.user)
                    cursor = page.next
                }
                #expect(users == ["user8", "user9", "user10", "user11"])
            }
        }
    }

    @Test func feedbackGivenOnOneHostReachesTheOthers() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let verdicts = [FleetFeedback(localSequence: 1, user: "alice", address: "192.0.2.10", verdict: .safe, time: 1_800_000_000),
                        FleetFeedback(localSequence: 2, user: "bob", address: "2001:db8::7", verdict: .compromised, time: 1_800_000_100)]
        try await fleet.withStore(host: "login1") { store async throws in
            #expect(try await store.upload(feedback: verdicts) == 2)
            #expect(try await store.upload(feedback: verdicts) == 0)
        }
        try await fleet.withStore(host: "login2") { store async throws in
            try await eventually("the verdicts are readable") { try await store.feedback(after: .start).verdicts.count == 2 }
            let page = try await store.feedback(after: .start)
            #expect(page.verdicts.map(\.feedback) == verdicts)
            #expect(page.verdicts.allSatisfy { $0.hostName == "login1" })
            #expect(try await store.feedback(after: page.next).verdicts.isEmpty)
        }
    }

    @Test func everyHostsFailuresAreReadOnceByTheCursor() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        for (index, host) in ["login1", "login2", "login3"].enumerated() {
            try await fleet.withStore(host: host) { store async throws in
                // Three users tried on each host from the same address.
                let rows = (1...3).map { FleetObservation(localSequence: Int64($0), user: "user\(index * 3 + $0)",
                                                          address: "203.0.113.66", service: "sshd", time: 1_800_000_000 + Double($0)) }
                #expect(try await store.upload(failures: rows) == 3)
                #expect(try await store.upload(failures: rows) == 0, "sent again: nothing new")
            }
        }
        try await fleet.withStore { store async throws in
            var cursor = FleetCursor.start
            var read: [FleetLogin] = []
            // Pages of two, until a short page.
            while true {
                let page = try await store.failures(after: cursor, limit: 2)
                read += page.logins
                cursor = page.next
                if page.logins.count < 2 { break }
            }
            #expect(read.count == 9)
            #expect(Set(read.map(\.observation.user)) == Set((1...9).map { "user\($0)" }))
            #expect(Set(read.map(\.hostName)) == ["login1", "login2", "login3"])
            #expect(read.map(\.cursor) == read.map(\.cursor).sorted(), "in cursor order")
            #expect(try await store.failures(after: cursor).logins.isEmpty)
            #expect(try await store.logins(after: .start).logins.isEmpty, "failures are not logins")
        }
    }

    @Test func exactlyOneAgentClaimsADelivery() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        for round in 0..<5 {
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for agent in ["host-a", "host-b", "host-c", "host-d"] {
                    group.addTask {
                        try await fleet.withStore(host: agent) { try await $0.claimDelivery(alertKey: "alert-\(round)", agent: agent) == .mine }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1, "round \(round)")
        }
        try await fleet.withStore { store async throws in
            // A claim held and not delivered past its lease can be taken over; a delivered one never.
            #expect(try await store.claimDelivery(alertKey: "lost", agent: "dead-host") == .mine)
            #expect(try await store.claimDelivery(alertKey: "lost", agent: "dead-host") == .mine, "its holder asking again")
            #expect(try await store.claimDelivery(alertKey: "lost", agent: "host-a", lease: 300) == .held)
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await store.claimDelivery(alertKey: "lost", agent: "host-a", lease: 0.01) == .mine)
            #expect(try await !store.markDelivered(alertKey: "lost", agent: "dead-host"))
            #expect(try await store.markDelivered(alertKey: "lost", agent: "host-a"))
            try await Task.sleep(for: .milliseconds(50))
            #expect(try await store.claimDelivery(alertKey: "lost", agent: "host-b", lease: 0.01) == .delivered)
        }
    }

    @Test func oneTrainerWinsTheLock() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let holding = AsyncStream<Void>.makeStream()
        let release = AsyncStream<Void>.makeStream()
        async let first: Bool? = fleet.withStore(host: "host-a") { store async throws in
            try await store.withTrainerLock { _ in
                holding.continuation.yield()
                for await _ in release.stream { break }
                return true
            }
        }
        for await _ in holding.stream { break }
        let second = try await fleet.withStore(host: "host-b") { store in try await store.withTrainerLock { _ in true } }
        #expect(second == nil)
        release.continuation.yield()
        #expect(try await first == true)
        // Released when the holder finishes: the next asker wins.
        #expect(try await fleet.withStore(host: "host-b") { try await $0.withTrainerLock { _ in true } } == true)
    }

    /// A trainer killed with the lock (a psql holding it, killed with SIGKILL): the
    /// server ends its session and the lock is free for the next agent.
    @Test func aKilledTrainerFreesTheLock() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        let psql = try TestPostgres.spawn([TestPostgres.binDirectory + "/psql", "-X", "-q", "-h", fleet.server.socketDirectory,
                                           "-p", String(fleet.server.port), "-U", "ipsight_owner", "-d", fleet.database], stdin: pipe[0])
        close(pipe[0])
        var killed = false
        defer {
            // A failed expectation must not leave psql (and its session) behind.
            if !killed { kill(psql, SIGKILL); _ = TestPostgres.wait(psql) }
            close(pipe[1])
        }
        let lock = "SELECT pg_advisory_lock(\(0x6970_7369_6768_7402));\n"
        #expect(write(pipe[1], lock, lock.utf8.count) == lock.utf8.count)
        try await eventually("psql holds the lock") {
            try fleet.superuser("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()") == "1"
        }
        #expect(try await fleet.withStore { try await $0.withTrainerLock { _ in true } } == nil)
        // psql waits for more input, its session idle with the lock: killed, not closed.
        kill(psql, SIGKILL)
        killed = true
        #expect(TestPostgres.wait(psql) == 128 + SIGKILL)
        try await eventually("the lock is free") {
            try await fleet.withStore { try await $0.withTrainerLock { _ in true } } == true
        }
    }

    @Test func publishedModelsRoundTripAndACorruptOneIsRefused() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { store async throws in
            try await store.migrate()
            #expect(try await store.latestModel() == nil)
            #expect(try await store.latestModelVersion() == nil)
            let first = try await store.publishModel(Self.model)
            let second = try #require(try await store.withTrainerLock { lease in
                var next = Self.model
                next.model.reverse()
                return try await lease.publishModel(next)
            })
            #expect(second == first + 1)
            let latest = try #require(try await store.latestModel())
            #expect(latest.version == second)
            #expect(try await store.latestModelVersion() == second)
            #expect(latest.publication.model == Self.model.model.reversed())
            #expect(latest.publication.trainedBy == "host-a" && latest.publication.windowEnd == 1_800_000_000)
            let metrics = try JSONValue.parse(latest.publication.metrics)
            #expect(metrics["auc"]?.numberValue == 0.97)
            #expect(latest.sha256.count == 64)
        }
        try fleet.superuser("UPDATE models SET model = set_byte(model, 5, get_byte(model, 5) # 1) WHERE version = 2")
        await #expect(throws: FleetError.self) { try await fleet.withStore { try await $0.latestModel() } }
    }

    /// Least privilege: the roles of deploy/fleet/roles.sql with the migration's grants.
    @Test func rolesCanDoTheirJobAndNoMore() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        try await fleet.withStore(user: "ipsight_test_agent1", host: "agent1", trainer: false) { store async throws in
            try await store.heartbeat(agent: AgentHeartbeat(hostName: "agent1", version: "1.0", trainer: false))
            try await store.heartbeat(agent: AgentHeartbeat(hostName: "agent1", version: "1.1", trainer: false))
            #expect(try await store.upload(logins: Self.logins(1...5)) == 5)
            #expect(try await store.upload(failures: Self.logins(1...5)) == 5)
            #expect(try await store.upload(feedback: [FleetFeedback(localSequence: 1, user: "alice", address: "192.0.2.10",
                                                                    verdict: .safe, time: 1_800_000_000)]) == 1)
            try await eventually("the logins are readable") { try await store.logins(after: .start).logins.count == 5 }
            #expect(try await store.claimDelivery(alertKey: "k", agent: "agent1") == .mine)
            #expect(try await store.markDelivered(alertKey: "k", agent: "agent1"))
            #expect(try await store.latestModel() == nil)
            await #expect(throws: FleetError.self) { try await store.publishModel(Self.model) }
            await #expect(throws: FleetError.self) { try await store.migrate() }
        }
        let denied = await #expect(throws: FleetError.self) {
            try await fleet.withStore(user: "ipsight_test_agent1") { try await $0.publishModel(Self.model) }
        }
        #expect(denied?.message.contains("permission denied for table models") == true)
        // Another agent's role cannot touch agent1's heartbeat row.
        let spoofed = await #expect(throws: FleetError.self) {
            try await fleet.withStore(user: "ipsight_test_agent2", host: "agent2") {
                try await $0.heartbeat(agent: AgentHeartbeat(hostName: "agent1", version: "6.6.6", trainer: false))
            }
        }
        #expect(spoofed?.message.contains("row-level security") == true)
        #expect(try fleet.superuser("SELECT version FROM agents WHERE host_name = 'agent1'") == "1.1")
        // A trainer's role publishes.
        let version = try await fleet.withStore(user: "ipsight_test_trainer", host: "trainer") { try await $0.publishModel(Self.model) }
        #expect(version == 1)
    }

    /// A password read from a file, over TCP with SCRAM; a wrong one is refused.
    @Test(.enabled(if: TestPostgres.ownServer, "the server the tests start: SCRAM and TLS on 127.0.0.1"))
    func passwordFromAFileOverTCP() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { try await $0.migrate() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("pw", "correct horse\n")
        dir.write("wrong", "battery staple\n")
        var settings = FleetSettings(user: "ipsight_test_password", database: fleet.database,
                                     endpoint: .tcp(host: "127.0.0.1", port: fleet.server.port),
                                     password: .file(dir.file("pw")), tls: .off, hostName: "tcp-host")
        let logger = Logger(label: "fleet-test")
        let count = try await FleetStore.withStore(try FleetConfig(settings: settings), logger: logger) {
            try await $0.upload(logins: Self.logins(1...3))
        }
        #expect(count == 3)
        settings.password = .file(dir.file("wrong"))
        let refused = await #expect(throws: FleetError.self) {
            try await FleetStore.withStore(try FleetConfig(settings: settings), logger: logger) { try await $0.schemaVersion() }
        }
        #expect(refused?.message.contains("password authentication failed") == true)
    }

    /// require encrypts; verify-full refuses a certificate no trusted CA signed, and
    /// accepts it with tls_ca naming it (its address in the certificate).
    @Test(.enabled(if: TestPostgres.ownServer, "the server the tests start: SCRAM and TLS on 127.0.0.1"))
    func tlsModes() async throws {
        let fleet = try TestFleet()
        let certificate = try #require(fleet.server.certificate)
        try await fleet.withStore { try await $0.migrate() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("pw", "correct horse")
        var settings = FleetSettings(user: "ipsight_test_password", database: fleet.database,
                                     endpoint: .tcp(host: "127.0.0.1", port: fleet.server.port),
                                     password: .file(dir.file("pw")), tls: .require, hostName: "tls-host")
        let logger = Logger(label: "fleet-test")
        let encrypted = try await FleetStore.withStore(try FleetConfig(settings: settings), logger: logger) { try await $0.connectionTLS() }
        #expect(encrypted?.hasPrefix("TLSv1.") == true)
        settings.tls = .verifyFull
        let untrusted = await #expect(throws: FleetError.self) {
            try await FleetStore.withStore(try FleetConfig(settings: settings), logger: logger) { try await $0.connectionTLS() }
        }
        #expect(untrusted?.message.contains("certificate") == true, "\(String(describing: untrusted))")
        settings.tlsCA = certificate
        let verified = try await FleetStore.withStore(try FleetConfig(settings: settings), logger: logger) { try await $0.connectionTLS() }
        #expect(verified?.hasPrefix("TLSv1.") == true)
        #expect(try await fleet.withStore { try await $0.connectionTLS() } == nil)
    }

    @Test func statusShowsAgentsModelsAndTheWindow() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { store async throws in
            await #expect(throws: FleetError("the fleet database has no schema yet: run ipsight fleet migrate")) {
                try await store.status()
            }
            try await store.migrate()
            try await store.heartbeat(agent: AgentHeartbeat(hostName: "host-a", version: "1.2.0", trainer: true))
            let now = Date().timeIntervalSince1970
            let recent = (1...4).map { FleetObservation(localSequence: $0, user: "u", address: "192.0.2.1", service: "sshd", time: now - 60) }
            try await store.upload(logins: recent + [FleetObservation(localSequence: 5, user: "u", address: "192.0.2.1",
                                                                      service: "sshd", time: now - 10 * 86_400)])
            try await store.upload(failures: recent)
            try await store.publishModel(Self.model)
            _ = try await store.claimDelivery(alertKey: "pending", agent: "host-a")
        }
        let status = try await fleet.withStore { try await $0.status(window: 86_400) }
        #expect(status.schemaVersion == Migrations.latestVersion)
        #expect(status.agents.map(\.hostName) == ["host-a"])
        #expect(status.agents[0].version == "1.2.0" && status.agents[0].lastLoginSequence == 5 && status.agents[0].loginsBehind == 5)
        #expect(status.agents[0].heartbeatAge >= 0 && status.agents[0].heartbeatAge < 60)
        #expect(status.models.map(\.version) == [1])
        #expect(status.models[0].byteCount == Int64(Self.model.model.count))
        #expect(status.loginsInWindow == 4 && status.failuresInWindow == 4 && status.undeliveredAlerts == 1)
    }
}

/// Polls `condition` every 50 ms for up to 20 s.
func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
    for _ in 0..<400 {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out waiting until \(what)")
    throw FleetError("timed out waiting until \(what)")
}
