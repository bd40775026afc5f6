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

        init(_ fleet: TestFleet, name: String, role: String, model: String) throws {
            dir = TemporaryDirectory()
            log = dir.file("agent.log")
            FileManager.default.createFile(atPath: dir.file("auth.log"), contents: nil)
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
                [alerts]
                output = \(dir.file("alerts.jsonl"))
                [api]
                socket = \(dir.file("api.sock"))
                [fleet]
                database = postgresql://\(role)@/\(fleet.database)?host=\(server.socketDirectory)&port=\(server.port)
                tls = off
                trainer = false
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

        /// SIGTERM, then the exit status.
        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            return process.terminationStatus
        }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
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
}
