import TestSupport
import IPSightCore
import Testing
@testable import Agent
import IPInsights

@Suite struct ConfigTests {
    @Test func shippedExampleParses() throws {
        let config = try AgentConfig.load(path: Paths.packageRoot + "/deploy/ipsight.conf")
        #expect(config.journal)
        #expect(config.thresholds == .init(challenge: .risk(0.9), alert: .risk(0.99)))
        #expect(config.serviceThresholds["sshd"] == .init(challenge: .falsePositiveRate(0.01), alert: .falsePositiveRate(0.001)))
        #expect(config.allowedNetworks.count == 2 && config.allowedNetworks[0].description == "127.0.0.0/8")
        #expect(config.retrainInterval == 86_400)
        #expect(config.retention == 90 * 86_400)
    }

    @Test func embeddedDefaultParses() throws {
        let config = try AgentConfig.parse(AgentConfig.embeddedDefault, path: "(built-in)")
        #expect(config.journal && config.follow)
        #expect(config.coldStartPolicy == .unfamiliar)
    }

    @Test func everyKeyIsRead() throws {
        let text = """
            [agent]
            state_dir = /srv/ipsight   # trailing comment
            model = "/srv/ipsight/m.ipsm"
            rules = /etc/ipsight/rules
            entity = user@service
            score_failures = yes
            [sources]
            journal = false
            files = /var/log/auth.log , /var/log/secure
            follow = false
            start = end
            utc = true
            [thresholds.nginx]
            alert = 0.5
            [thresholds]
            challenge = 0.2
            alert = 0.7
            [cold_start]
            policy = challenge
            min_logins = 3
            [allowlist]
            networks = 192.0.2.0/24, 2001:db8::/32
            entities = backup, deploy@sshd
            [alerts]
            output = stdout, /var/log/ipsight/alerts.jsonl
            challenges = false
            [retrain]
            interval = 12h
            retention = 30d
            bootstrap_min_logins = 50
            validation_share = 0.2
            """
        let c = try AgentConfig.parse(text, path: "t.conf")
        #expect(c.stateDirectory == "/srv/ipsight" && c.modelPath == "/srv/ipsight/m.ipsm")
        #expect(c.entity == .userAtService && c.scoreFailures)
        #expect(!c.journal && c.files == ["/var/log/auth.log", "/var/log/secure"] && !c.follow && c.startAtEnd && c.utc)
        // A service section inherits [thresholds] even when it comes first in the file.
        #expect(c.serviceThresholds["nginx"] == .init(challenge: .risk(0.2), alert: .risk(0.5)))
        #expect(c.coldStartPolicy == .challenge && c.coldStartMinLogins == 3)
        #expect(c.allowedNetworks.count == 2 && c.allowedEntities == ["backup", "deploy@sshd"])
        #expect(c.alertOutputs == ["stdout", "/var/log/ipsight/alerts.jsonl"] && !c.alertChallenges)
        #expect(c.retrainInterval == 43_200 && c.retention == 30 * 86_400 && c.bootstrapMinLogins == 50 && c.validationShare == 0.2)
        #expect(c.databasePath == "/srv/ipsight/ipsight.db")
    }

    /// The error for `text`, which must not parse.
    private func error(_ text: String) -> ConfigError? {
        do {
            _ = try AgentConfig.parse(text, path: "bad.conf")
            return nil
        } catch {
            return error
        }
    }

    @Test func errorsNameLineAndKey() {
        let unknown = error("[agent]\n\n# comment\nstate_dirr = /x\n")
        #expect(unknown == ConfigError(file: "bad.conf", line: 4, key: "agent.state_dirr", message: "unknown key"))
        #expect(unknown?.description == "bad.conf:4: agent.state_dirr: unknown key")

        let bool = error("[sources]\nfollow = maybe\n")
        #expect(bool?.line == 2 && bool?.key == "sources.follow")

        let cidr = error("[allowlist]\nnetworks = 10.0.0.0/8, 10.0.0.0/33\n")
        #expect(cidr?.line == 2 && cidr?.key == "allowlist.networks")
        #expect(cidr?.message.contains("10.0.0.0/33") == true)

        let twice = error("[cold_start]\nmin_logins = 3\nmin_logins = 4\n")
        #expect(twice?.line == 3 && twice?.message == "set twice (first on line 2)")

        let policy = error("[cold_start]\npolicy = ignore\n")
        #expect(policy?.line == 2 && policy?.key == "cold_start.policy")

        let order = error("[thresholds]\nchallenge = 0.95\nalert = 0.9\n")
        #expect(order?.line == 2 && order?.key == "thresholds.challenge")

        let duration = error("[retrain]\ninterval = soon\n")
        #expect(duration?.line == 2 && duration?.key == "retrain.interval")

        let outside = error("state_dir = /x\n")
        #expect(outside?.line == 1 && outside?.message == "keys belong in a [section]")

        let header = error("[agent\n")
        #expect(header?.line == 1)

        let noSource = error("[sources]\njournal = false\n")
        #expect(noSource?.key == "sources")

        let fpr = error("[thresholds.sshd]\nalert_fpr = 2\n")
        #expect(fpr?.line == 2 && fpr?.key == "thresholds.sshd.alert_fpr")

        let output = error("[alerts]\noutput = stdout, alerts.jsonl\n")
        #expect(output?.line == 2 && output?.key == "alerts.output")

        let relative = error("[sources]\nfiles = auth.log\n")
        #expect(relative?.line == 2 && relative?.key == "sources.files")
    }

    @Test func missingFileIsAnError() {
        #expect(throws: ConfigError.self) { try AgentConfig.load(path: "/nonexistent/ipsight.conf") }
    }

    /// `[risk] networks` naming `table`, with the key on line 4.
    private func routedConfig(_ table: String) -> String {
        "[sources]\njournal = true\n[risk]\nnetworks = \(table)\n"
    }

    @Test func routedNetworkTableIsReadWhenAskedAndReusedWhileUnchanged() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let rows = ["10.0.0.0\t10.0.255.255\t64500", "10.1.0.0\t10.1.255.255\t64501", "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502"]
        dir.write("table.tsv", "# first\tlast\tasn\n" + rows.joined(separator: "\n") + "\n")
        var c = try AgentConfig.parse(routedConfig(dir.file("table.tsv")), path: "t.conf")
        #expect(c.networksPath == dir.file("table.tsv"))
        #expect(c.networks == nil, "parsing alone does not read the table")
        try c.loadNetworks()
        let table = try #require(c.networks)
        #expect(table.networks.count == rows.count && table.path == dir.file("table.tsv"))
        #expect(table.networks.asn(of: IPAddress("10.1.2.3")!) == 64501)

        // A reload of the same unchanged file keeps the table read at start...
        var same = try AgentConfig.parse(routedConfig(dir.file("table.tsv")), path: "t.conf")
        try same.loadNetworks(reusing: table)
        #expect(same.networks === table)
        // ...and reads it again once it has been rewritten.
        dir.write("table.tsv", rows[0] + "\n")
        var rewritten = try AgentConfig.parse(routedConfig(dir.file("table.tsv")), path: "t.conf")
        try rewritten.loadNetworks(reusing: table)
        #expect(rewritten.networks !== table && rewritten.networks?.networks.count == 1)

        // Off by default, and `off` turns it off.
        var none = try AgentConfig.parse("[sources]\njournal = true\n[risk]\nnetworks = off\n", path: "t.conf")
        try none.loadNetworks(reusing: table)
        #expect(none.networksPath == nil && none.networks == nil)
        #expect(AgentConfig().networksPath == nil)
    }

    @Test func aMissingOrMalformedRoutedNetworkTableNamesTheKeyAndTheLine() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func loadError(_ table: String) throws -> ConfigError? {
            var c = try AgentConfig.parse(routedConfig(table), path: "risk.conf")
            do {
                try c.loadNetworks()
                return nil
            } catch {
                return error
            }
        }
        let missing = try #require(try loadError(dir.file("absent.tsv")))
        #expect(missing.file == "risk.conf" && missing.line == 4 && missing.key == "risk.networks")
        #expect(missing.message.hasPrefix(dir.file("absent.tsv") + ": "), "\(missing)")

        // Row 3 of the table (after a comment line) has no AS number.
        dir.write("bad.tsv", "# pyasn\n10.0.0.0\t10.0.255.255\t64500\n10.1.0.0\t10.1.255.255\n")
        let malformed = try #require(try loadError(dir.file("bad.tsv")))
        #expect(malformed.line == 4 && malformed.key == "risk.networks")
        #expect(malformed.message.hasPrefix(dir.file("bad.tsv") + ":3: "), "\(malformed)")
        #expect(malformed.description.hasPrefix("risk.conf:4: risk.networks: \(dir.file("bad.tsv")):3: "))

        dir.write("empty.tsv", "# nothing routed\n")
        #expect(try loadError(dir.file("empty.tsv"))?.key == "risk.networks")

        let relative = error("[risk]\nnetworks = table.tsv\n")
        #expect(relative?.line == 2 && relative?.key == "risk.networks")
    }

    @Test func networksMatchTheirAddressesOnly() throws {
        let net = try #require(Network("192.0.2.77/24"))
        #expect(net.description == "192.0.2.0/24")
        #expect(net.contains(IPAddress("192.0.2.1")!))
        #expect(!net.contains(IPAddress("192.0.3.1")!))
        #expect(!net.contains(IPAddress("2001:db8::1")!))
        #expect(Network("2001:db8::/32")!.contains(IPAddress("2001:db8:1::5")!))
        #expect(Network("10.0.0.1")!.length == 32)
        #expect(Network("10.0.0.0/x") == nil && Network("nonsense") == nil)
    }

    @Test func valuesThatWouldCrashOrWeakenTheAgentAreRefused() throws {
        let refused = [
            "[credential_stuffing]\nwindow = 1e30s",            // overflowed when formatted
            "[credential_stuffing]\nwindow = inf",
            "[retrain]\ninterval = 99999d",
            "[sink.x]\ntype = webhook\nurl = http://127.0.0.1:9/\ntimeout = inf",   // trapped in delivery
            "[sink.x]\ntype = webhook\nurl = http://127.0.0.1:9/\ntimeout = 1e16",
            "[sink.x]\ntype = webhook\nurl = http://127.0.0.1:9/\nsecrte = file:/etc/x",  // a misspelt secret: unsigned alerts
            "[api]\nlisten = 127.0.0.1:8081",                      // any local user could rewrite decisions
        ]
        for text in refused {
            #expect(throws: ConfigError.self, "\(text)") { try AgentConfig.parse(text, path: "t.conf") }
        }
        // CRLF line endings are read like LF.
        let crlf = try AgentConfig.parse("[sources]\r\nfiles = /var/log/auth.log\r\njournal = false\r\n", path: "t.conf")
        #expect(crlf.files == ["/var/log/auth.log"] && !crlf.journal)
    }

    @Test func aFileCanNameTheServiceThatWritesIt() throws {
        let c = try AgentConfig.parse("""
            [sources]
            files = /var/log/auth.log, /var/log/keycloak/keycloak.log:keycloak
            """, path: "t.conf")
        #expect(c.files == ["/var/log/auth.log", "/var/log/keycloak/keycloak.log"])
        #expect(c.fileIdentifiers == ["/var/log/keycloak/keycloak.log": "keycloak"])
        #expect(throws: ConfigError.self) { try AgentConfig.parse("[sources]\nfiles = /var/log/x.log:", path: "t.conf") }
        #expect(throws: ConfigError.self) { try AgentConfig.parse("[sources]\nfiles = keycloak.log:keycloak", path: "t.conf") }
    }
}
