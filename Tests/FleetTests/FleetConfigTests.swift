import Agent
@testable import Fleet
import IPSightCore
import Testing
import TestSupport

/// The `[fleet]` section as `ipsight config check` sees it: through the agent's parser.
@Suite struct FleetConfigTests {
    func parse(_ fleet: String) throws(ConfigError) -> AgentConfig {
        try AgentConfig.parse("[sources]\njournal = true\n\n[fleet]\n" + fleet, path: "ipsight.conf")
    }

    func error(_ fleet: String) -> ConfigError? {
        do { _ = try parse(fleet); return nil } catch { return error }
    }

    @Test func noSectionIsTheSingleHostDefault() throws {
        let config = try AgentConfig.parse(AgentConfig.embeddedDefault, path: "(built-in)")
        #expect(config.fleet == nil)
    }

    @Test func networkHostDefaultsToVerifyFull() throws {
        let fleet = try #require(try parse("""
            database = postgresql://ipsight_agent@db.example.org:6432/ipsight
            password = file:/etc/ipsight/fleet.password
            trainer = false
            host_name = login1.example.org
            """).fleet)
        #expect(fleet.user == "ipsight_agent" && fleet.database == "ipsight")
        #expect(fleet.endpoint == .tcp(host: "db.example.org", port: 6432))
        #expect(fleet.password == .file("/etc/ipsight/fleet.password"))
        #expect(fleet.tls == .verifyFull)
        #expect(!fleet.trainer)
        #expect(fleet.hostName == "login1.example.org")
        #expect(fleet.lines["fleet.password"] == 6)
        #expect(fleet.tlsCA == nil)
        let private_ = try #require(try parse("database = postgresql://agent@db.example.org/ipsight\ntls_ca = /etc/ipsight/fleet-ca.pem").fleet)
        #expect(private_.tlsCA == "/etc/ipsight/fleet-ca.pem" && private_.tls == .verifyFull)
    }

    @Test func unixSocketForm() throws {
        let fleet = try #require(try parse("database = postgresql://agent@/ipsight?host=/run/postgresql&port=5433\npassword = env:PGPASS_IPSIGHT").fleet)
        #expect(fleet.endpoint == .unixSocket(path: "/run/postgresql/.s.PGSQL.5433"))
        #expect(fleet.password == .environment("PGPASS_IPSIGHT"))
        #expect(fleet.tls == .off)
        #expect(fleet.trainer)
        #expect(fleet.hostName == FleetSettings.machineHostName())
    }

    @Test func ipv6LoopbackMayGoWithoutTLS() throws {
        let fleet = try #require(try parse("database = postgresql://agent@[::1]:5432/ipsight\ntls = off").fleet)
        #expect(fleet.endpoint == .tcp(host: "::1", port: 5432))
        #expect(fleet.tls == .off)
    }

    @Test func inlinePasswordsAreRefused() {
        let value = error("database = postgresql://agent@db/ipsight\npassword = hunter2")
        #expect(value?.line == 6 && value?.key == "fleet.password")
        #expect(value?.message.contains("inline password is refused") == true)
        let url = error("database = postgresql://agent:hunter2@db/ipsight")
        #expect(url?.line == 5 && url?.key == "fleet.database")
        #expect(url?.message.contains("password in the URL is refused") == true)
    }

    @Test func plainTextOnlyOnThisMachine() {
        let network = error("database = postgresql://agent@10.0.0.5/ipsight\n\ntls = off")
        #expect(network?.line == 7 && network?.key == "fleet.tls")
        #expect(network?.description == "ipsight.conf:7: fleet.tls: off is allowed only for loopback addresses and Unix sockets, not for '10.0.0.5': use require or verify-full")
        // A name that starts like loopback is still a name.
        #expect(error("database = postgresql://agent@127.evil.example/ipsight\ntls = off")?.key == "fleet.tls")
        #expect(error("database = postgresql://agent@/ipsight?host=/run/postgresql\ntls = verify-full")?.key == "fleet.tls")
    }

    @Test func everyProblemNamesItsLine() {
        let cases: [(String, Int, String)] = [
            ("database = mysql://agent@db/ipsight", 5, "fleet.database"),
            ("database = postgresql://agent@db", 5, "fleet.database"),
            ("database = postgresql://agent@db:99999/ipsight", 5, "fleet.database"),
            ("database = postgresql://agent@db/ipsight?sslmode=disable", 5, "fleet.database"),
            ("database = postgresql://agent@/ipsight?host=run/postgresql", 5, "fleet.database"),
            ("database = postgresql://agent@db/ipsight\ntls = maybe", 6, "fleet.tls"),
            ("database = postgresql://agent@db/ipsight\ntrainer = sometimes", 6, "fleet.trainer"),
            ("database = postgresql://agent@db/ipsight\n\npassword = file:relative/path", 7, "fleet.password"),
            ("database = postgresql://agent@db/ipsight\npassword = env:1BAD", 6, "fleet.password"),
            ("database = postgresql://agent@db/ipsight\nhost_name = two words", 6, "fleet.host_name"),
            ("database = postgresql://agent@db/ipsight\nreplicas = 3", 6, "fleet.replicas"),
            ("database = postgresql://agent@db/ipsight\ntls_ca = ca.pem", 6, "fleet.tls_ca"),
            ("database = postgresql://agent@db/ipsight\ntls = require\ntls_ca = /etc/ssl/ca.pem", 7, "fleet.tls_ca"),
            ("trainer = true", 5, "fleet.database"),
        ]
        for (text, line, key) in cases {
            let found = error(text)
            #expect(found?.line == line && found?.key == key, "\(text): \(String(describing: found))")
        }
    }

    @Test func passwordIsReadFromFileOrEnvironment() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("pw", "s3cret\n")
        var settings = FleetSettings(user: "agent", database: "ipsight", endpoint: .tcp(host: "127.0.0.1", port: 5432),
                                     password: .file(dir.path + "/pw"))
        #expect(try FleetConfig(settings: settings).clientConfiguration().password == "s3cret")
        settings.password = .file(dir.path + "/missing")
        settings.lines["fleet.password"] = 12
        #expect(throws: FleetError("ipsight.conf:12: fleet.password: \(dir.path)/missing: no such file")) {
            try FleetConfig(settings: settings, file: "ipsight.conf")
        }
        settings.password = .environment("IPSIGHT_FLEET_TEST_UNSET_VARIABLE")
        #expect(throws: FleetError.self) { try FleetConfig(settings: settings) }
    }

    @Test func tlsModesReachTheDriver() throws {
        var settings = FleetSettings(user: "agent", database: "ipsight", endpoint: .tcp(host: "db.example.org", port: 5432))
        #expect(settings.tls == .verifyFull)
        let full = try FleetConfig(settings: settings).tlsConfiguration()
        #expect(full.certificateVerification == .fullVerification)
        settings.tls = .require
        #expect(try FleetConfig(settings: settings).tlsConfiguration().certificateVerification == .none)
        // Loopback defaults to plain text, like the Unix socket.
        #expect(FleetSettings(user: "a", database: "d", endpoint: .tcp(host: "127.0.0.1", port: 5432)).tls == .off)
    }
}
