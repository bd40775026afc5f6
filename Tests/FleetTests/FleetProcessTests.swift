import Foundation
import IPInsights
import IPSightCore
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Two `ipsight run` processes with a `[fleet]` section, each with its own role,
/// state directory and log file, on the test server: what one host's sshd logs
/// becomes known to the other through the database.
@Suite(.serialized, .enabled(if: !TestPostgres.skipped, "IPSIGHT_SKIP_POSTGRES=1"))
struct FleetProcessTests {
    static let binary = PackagePaths.root + "/.build/debug/ipsight"

    final class Host {
        let dir: TemporaryDirectory
        let process = Process()
        let log: String

        /// With `trainer`, the host may train for the fleet and retrains every `retrainEvery`.
        init(_ fleet: TestFleet, name: String, role: String, model: String, trainer: Bool = false,
             retrainEvery: String = "1h", history: [String] = []) throws {
            dir = TemporaryDirectory()
            log = dir.file("agent.log")
            FileManager.default.createFile(atPath: dir.file("auth.log"), contents: Data(history.joined().utf8))
            let server = fleet.server
            dir.write("agent.conf", """
                [agent]
                state_dir = \(dir.path)
                model = \(model)
                rules = \(PackagePaths.root)/rules
                [sources]
                journal = false
                files = \(dir.file("auth.log"))
                follow = true
                utc = true
                [cold_start]
                min_logins = 1
                [retrain]
                interval = \(retrainEvery)
                bootstrap_min_logins = 200
                retention = 3650d
                [alerts]
                output = \(dir.file("alerts.jsonl"))
                [api]
                socket = \(dir.file("api.sock"))
                [fleet]
                database = postgresql://\(role)@/\(fleet.database)?host=\(server.socketDirectory)&port=\(server.port)
                tls = off
                trainer = \(trainer)
                host_name = \(name)

                """)
            process.executableURL = URL(fileURLWithPath: FleetProcessTests.binary)
            process.arguments = ["run", "--config", dir.file("agent.conf")]
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        func append(user: String, ip: String) {
            dir.write("auth.log", Synthetic.sshdLine(minute: 0, user: user, ip: ip), append: true)
        }

        /// Logins of `user` from `ip` in this host's store, by the host they came from.
        func stored(user: String, ip: String) -> [String] {
            let out = Pipe()
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            sqlite.arguments = ["-c", """
                import sqlite3, sys
                db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
                for (origin,) in db.execute("SELECT coalesce(origin, 'own') FROM observations WHERE user = ? AND ip = ?", (sys.argv[2], sys.argv[3])):
                    print(origin)
                """, dir.file("ipsight.db"), user, ip]
            sqlite.standardOutput = out
            sqlite.standardError = FileHandle.nullDevice
            guard (try? sqlite.run()) != nil else { return [] }
            sqlite.waitUntilExit()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return text.split(separator: "\n").map(String.init)
        }

        /// Logins in this host's store from `origin` ("own": its own).
        func storedCount(origin: String) -> Int {
            let out = Pipe()
            let sqlite = Process()
            sqlite.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            sqlite.arguments = ["-c", """
                import sqlite3, sys
                db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
                print(db.execute("SELECT count(*) FROM observations WHERE coalesce(origin, 'own') = ?", (sys.argv[2],)).fetchone()[0])
                """, dir.file("ipsight.db"), origin]
            sqlite.standardOutput = out
            sqlite.standardError = FileHandle.nullDevice
            guard (try? sqlite.run()) != nil else { return -1 }
            sqlite.waitUntilExit()
            return Int(String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }

        /// Appends `count` logins of distinct users named by `prefix`.
        func append(_ prefix: String, _ count: Int) {
            let lines = (0..<count).map { Synthetic.sshdLine(minute: $0, user: "\(prefix)\($0)", ip: "10.9.\($0 / 200).\($0 % 200 + 1)") }
            dir.write("auth.log", lines.joined(), append: true)
        }

        /// SIGTERM, then the exit status.
        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            return process.terminationStatus
        }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        /// `ipsight retrain`: a retraining due now (the agent checks on its own once a minute).
        func retrainNow() {
            let command = Process()
            command.executableURL = URL(fileURLWithPath: FleetProcessTests.binary)
            command.arguments = ["retrain", "--config", dir.file("agent.conf")]
            command.standardOutput = FileHandle.nullDevice
            command.standardError = FileHandle.nullDevice
            guard (try? command.run()) != nil else { return }
            command.waitUntilExit()
        }
    }

    @Test func aLoginOnOneHostIsKnownToTheOtherProcess() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let model = TemporaryDirectory()
        defer { model.remove() }
        try ModelFile.save(Synthetic.model(), to: model.file("model.ipsm"))
        let a = try Host(fleet, name: "host-a", role: "ipsight_test_agent1", model: model.file("a.ipsm"))
        let b = try Host(fleet, name: "host-b", role: "ipsight_test_agent2", model: model.file("b.ipsm"))
        defer { a.dir.remove(); b.dir.remove() }
        try FileManager.default.copyItem(atPath: model.file("model.ipsm"), toPath: model.file("a.ipsm"))
        try FileManager.default.copyItem(atPath: model.file("model.ipsm"), toPath: model.file("b.ipsm"))

        // alice logs in to A from home; B's store holds it, from host-a, within seconds.
        a.append(user: "alice", ip: "10.1.0.7")
        #expect(await waitUntil(seconds: 20) { b.stored(user: "alice", ip: "10.1.0.7") == ["host-a"] }, "\(a.output)\n\(b.output)")
        #expect(a.stored(user: "alice", ip: "10.1.0.7") == ["own"], "A's own login, once")
        #expect(a.stop() == 0 && b.stop() == 0, "\(a.output)\n\(b.output)")
    }

    /// Two trainer-capable processes race for the lock: one trains and publishes,
    /// the other trains nothing. The holder is killed (SIGKILL, at whatever point of
    /// training or publishing it is); the other takes the lock and publishes, and
    /// every version in the table is whole (its bytes match its checksum).
    @Test func twoTrainersRaceOneIsKilledTheOtherTakesOver() async throws {
        let fleet = try TestFleet()
        try await fleet.withStore { _ = try await $0.migrate() }
        let models = TemporaryDirectory()
        defer { models.remove() }
        // Each host's own history: 25 users, each from their home /24, 12 logins each.
        func history(_ host: Int) -> [String] {
            (0..<300).map { n in
                let user = n % 25
                return Synthetic.sshdLine(minute: n, user: "h\(host)u\(user)", ip: "10.\(host).\(user).\(n % 7 + 1)")
            }
        }
        let a = try Host(fleet, name: "host-a", role: "ipsight_test_trainer", model: models.file("a.ipsm"), trainer: true,
                         retrainEvery: "2s", history: history(1))
        let b = try Host(fleet, name: "host-b", role: "ipsight_test_trainer", model: models.file("b.ipsm"), trainer: true,
                         retrainEvery: "2s", history: history(2))
        defer {
            for host in [a, b] where host.process.isRunning { kill(host.process.processIdentifier, SIGKILL) }
            a.dir.remove(); b.dir.remove()
        }
        func trainers() -> [String] {
            ((try? fleet.superuser("SELECT DISTINCT trained_by FROM models ORDER BY 1")) ?? "")
                .split(separator: "\n").map(String.init)
        }
        func versions() -> Int { Int((try? fleet.superuser("SELECT count(*) FROM models")) ?? "") ?? 0 }
        #expect(await waitUntil(seconds: 120) { versions() >= 1 }, "\(a.output)\n\(b.output)")
        // Both asked to retrain: only the lock holder does.
        a.retrainNow()
        b.retrainNow()
        try await Task.sleep(for: .seconds(3))
        let holders = trainers()
        #expect(holders.count == 1, "one trainer at a time: \(holders)")
        let (holder, other) = holders == ["host-b"] ? (b, a) : (a, b)
        let otherName = holders == ["host-b"] ? "host-a" : "host-b"

        // Killed while it retrains or publishes (or just after).
        holder.retrainNow()
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...1500)))
        kill(holder.process.processIdentifier, SIGKILL)
        holder.process.waitUntilExit()
        let before = versions()
        #expect(await waitUntil(seconds: 120) {
            if trainers().contains(otherName) && versions() > before { return true }
            other.retrainNow()
            return false
        }, "the other takes the lock and publishes: \(other.output)")
        #expect(try fleet.superuser("SELECT count(*) FROM models WHERE encode(sha256(model), 'hex') <> sha256") == "0",
                "no half version")
        #expect(try await fleet.withStore { try await $0.latestModel() }?.publication.trainedBy == otherName)
        #expect(other.stop() == 0, "\(other.output)")
    }

    /// The database stopped mid-stream and started again under two running agents:
    /// both keep deciding, and afterwards each login is in the database once and in
    /// the other agent's store once.
    @Test(.enabled(if: TestPostgres.ownServer, "a server the test can stop"))
    func theDatabaseStoppedAndStartedUnderTwoAgentsLosesAndDoublesNothing() async throws {
        try await TestPostgres.withOwnServer { fleet, instance in
            let model = TemporaryDirectory()
            defer { model.remove() }
            try ModelFile.save(Synthetic.model(), to: model.file("a.ipsm"))
            try ModelFile.save(Synthetic.model(), to: model.file("b.ipsm"))
            let a = try Host(fleet, name: "host-a", role: "ipsight_test_agent1", model: model.file("a.ipsm"))
            let b = try Host(fleet, name: "host-b", role: "ipsight_test_agent2", model: model.file("b.ipsm"))
            defer {
                for host in [a, b] where host.process.isRunning { kill(host.process.processIdentifier, SIGKILL) }
                a.dir.remove(); b.dir.remove()
            }
            func inDatabase() -> Int { Int((try? fleet.superuser("SELECT count(*) FROM logins")) ?? "") ?? -1 }

            a.append("before", 50)
            #expect(await waitUntil(seconds: 30) { b.storedCount(origin: "host-a") == 50 }, "\(a.output)\n\(b.output)")
            // pg_ctl's fast stop (see the in-process outage test for why not immediate).
            try TestPostgres.run(instance.stop.map { $0 == "immediate" ? "fast" : $0 })
            a.append("during-a", 50)
            b.append("during-b", 20)
            #expect(await waitUntil(seconds: 20) { a.storedCount(origin: "own") == 100 && b.storedCount(origin: "own") == 20 },
                    "both decide and store while the database is away")
            #expect(await waitUntil(seconds: 20) { a.output.contains("fleet: degraded") && b.output.contains("fleet: degraded") })
            try TestPostgres.run(instance.start)
            a.append("after", 10)
            #expect(await waitUntil(seconds: 60) {
                inDatabase() == 130 && b.storedCount(origin: "host-a") == 110 && a.storedCount(origin: "host-b") == 20
            }, "\(a.output)\n\(b.output)")
            try await Task.sleep(for: .seconds(2))
            #expect(inDatabase() == 130)
            #expect(try fleet.superuser("SELECT count(DISTINCT (host_name, local_sequence)) FROM logins") == "130")
            #expect(b.storedCount(origin: "host-a") == 110 && a.storedCount(origin: "host-b") == 20, "each once")
            #expect(a.stop() == 0 && b.stop() == 0, "\(a.output)\n\(b.output)")
    
        }
    }
}
