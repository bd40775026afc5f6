import TestSupport
import IPSightCore
@testable import IPInsights
import Testing
@testable import Detection

@Suite struct DetectorTests {
    static let model = Synthetic.model()

    func login(_ user: String, _ ip: String, service: String = "sshd", outcome: LoginEvent.Outcome = .success) -> LoginEvent {
        LoginEvent(time: 1_700_100_000, host: "h", service: service, outcome: outcome, user: user, ip: ip, port: 22,
                   method: "password", rule: "sshd/accepted")
    }

    func config(_ edit: (inout DecisionPolicy) -> Void = { _ in }) -> DecisionPolicy {
        var c = DecisionPolicy()
        c.coldStartMinLogins = 5
        edit(&c)
        return c
    }

    /// A detector with a model, a calibration and history from 300 usual logins.
    func trained(_ c: DecisionPolicy) throws -> Detector {
        let observations = Synthetic.observations(300)
        let detector = Detector(policy: c, model: DetectorTests.model)
        let calibration = try #require(Calibration.fit(model: DetectorTests.model, observations: observations, policy: c))
        detector.install(model: DetectorTests.model, calibration: calibration,
                         entities: Set(Synthetic.users.map { StableHash.xxh64($0) }))
        detector.preload(observations)
        return detector
    }

    @Test func newEntitiesAreLearntUntilTheyHaveEnoughLogins() throws {
        let detector = Detector(policy: config(), model: DetectorTests.model)
        for k in 0..<5 {
            let v = try #require(detector.decide(login("zed", "10.50.0.\(k + 1)")))
            #expect(v.decision == .learn && v.reason == "new-entity")
            #expect(v.reasons.first?.1 == "\(k) of 5 logins needed before scoring")
            detector.remember(user: "zed", service: "sshd", ip: "10.50.0.\(k + 1)")
        }
        // Enough logins, but no calibration yet: still learning, saying why.
        #expect(detector.decide(login("zed", "10.50.0.9"))?.reason == "calibrating")
        #expect(Detector(policy: config { $0.coldStartMinLogins = 0 }, model: nil).decide(login("zed", "10.50.0.9"))?.reason == "no-model")
    }

    @Test func aScoreThatIsNotFiniteFailsClosed() throws {
        let c = config()
        let detector = try trained(c)
        // The same model with every weight of every tensor NaN: no finite score anywhere.
        let broken = DetectorTests.model.copy(settings: DetectorTests.model.hyperparameters)
        for (_, buffer) in ModelFile.tensorList(broken) {
            for k in 0..<buffer.count { buffer.pointer[k] = .nan }
        }
        let calibration = try #require(Calibration.fit(model: DetectorTests.model, observations: Synthetic.observations(300), policy: c))
        detector.install(model: broken, calibration: calibration, entities: Set(Synthetic.users.map { StableHash.xxh64($0) }))
        var rng = SeededRandom(seed: 3)
        let v = try #require(detector.decide(login("alice", Synthetic.address("alice", &rng))))
        #expect(v.decision == .challenge && v.reason == "invalid-score", "\(v)")
    }

    /// 300 usual logins, plus alice, bob and carol through one VPN egress /24.
    func organisation(_ edit: (inout DecisionPolicy) -> Void = { _ in }) -> Detector {
        let detector = Detector(policy: config(edit), model: nil)
        var observations = Synthetic.observations(300)
        for (k, user) in ["alice", "bob", "carol"].enumerated() {
            observations.append(Observation(time: 1_700_100_000, user: user, ip: "198.51.100.\(10 + k)", service: "sshd"))
        }
        detector.preload(observations)
        return detector
    }

    @Test func aDormantAccountFromAnUnfamiliarNetworkIsChallenged() throws {
        let detector = organisation()
        for k in 0..<4 { detector.remember(user: "svc-backup", service: "sshd", ip: "10.77.\(k).5") }
        let away = try #require(detector.decide(login("svc-backup", "203.0.113.9")))
        #expect(away.decision == .challenge && away.reason == "new-entity-unfamiliar", "\(away)")
        // Near its own few logins, or on a network other accounts use: learnt, as before.
        #expect(detector.decide(login("svc-backup", "10.77.200.1"))?.decision == .learn)
        let vpn = try #require(detector.decide(login("svc-backup", "198.51.100.77")))
        #expect(vpn.decision == .learn, "\(vpn)")
        #expect(vpn.reasons.contains { $0.0 == "familiar network" && $0.1.hasPrefix("a network 3 of your accounts use") }, "\(vpn.reasons)")
        // A brand-new account gets the same treatment.
        #expect(detector.decide(login("newcomer", "203.0.113.10"))?.decision == .challenge)
        #expect(detector.decide(login("newcomer", "198.51.100.78"))?.decision == .learn)
    }

    @Test func coldStartCanAlertOnUnfamiliarNetworksOrLearnAsBefore() throws {
        let alerting = organisation { $0.coldStartUnfamiliar = .alert }
        #expect(alerting.decide(login("svc-backup", "203.0.113.9"))?.decision == .alert)
        let learning = organisation { $0.coldStartPolicy = .learn }
        #expect(learning.decide(login("svc-backup", "203.0.113.9"))?.decision == .learn)
        // With too little history to know the organisation's networks, a new installation learns.
        let fresh = Detector(policy: config(), model: nil)
        #expect(fresh.decide(login("svc-backup", "203.0.113.9"))?.decision == .learn)
    }

    @Test func coldStartPolicyCanChallengeOrAlert() throws {
        let alerting = Detector(policy: config { $0.coldStartPolicy = .alert }, model: nil)
        #expect(alerting.decide(login("new", "192.0.2.1"))?.decision == .alert)
        let challenging = Detector(policy: config { $0.coldStartPolicy = .challenge }, model: nil)
        let v = try #require(challenging.decide(login("new", "192.0.2.1")))
        #expect(v.decision == .challenge && v.reason == "new-entity")
    }

    @Test func allowlistsWinOverEverything() throws {
        let c = config {
            $0.coldStartPolicy = .alert
            $0.allowedNetworks = [Network("198.51.100.0/24")!]
            $0.allowedEntities = ["backup", "deploy@sshd"]
        }
        let detector = Detector(policy: c, model: nil)
        let network = try #require(detector.decide(login("anyone", "198.51.100.7")))
        #expect(network.decision == .allow && network.reason == "allowlisted-network")
        #expect(network.reasons.first! == ("allowlisted network", "198.51.100.0/24"))
        #expect(detector.decide(login("backup", "203.0.113.1"))?.reason == "allowlisted-entity")
        #expect(detector.decide(login("deploy", "203.0.113.1"))?.decision == .alert, "allowlisted entity is deploy@sshd, not deploy")
        var perService = c
        perService.entity = .userAtService
        #expect(Detector(policy: perService, model: nil).decide(login("deploy", "203.0.113.1"))?.reason == "allowlisted-entity")
    }

    @Test func usualNetworksAreAllowedAndUnrelatedOnesAlerted() throws {
        let detector = try trained(config())
        var rng = SeededRandom(seed: 77)
        for user in Synthetic.users {
            let home = try #require(detector.decide(login(user, Synthetic.address(user, &rng))))
            #expect(home.decision == .allow, "\(user) at home: \(home.reasons)")
            let away = try #require(detector.decide(login(user, "203.0.113.50")))
            #expect(away.decision == .alert, "\(user) away: \(away.reasons)")
            #expect(away.reason == "risk")
            let names = away.reasons.map(\.0)
            #expect(names.contains("nearest known network") && names.contains("main reason"))
            #expect(away.reasons.first { $0.0 == "first seen" }?.1 == "network new for this entity")
            #expect(away.reasons.first?.1.contains("at or above alert threshold 0.9900") == true)
        }
    }

    /// A routed-network table over the synthetic homes: one row per /16 of 10.0 to
    /// 10.10 (alice 10.1, bob 10.2, erin 10.9), 11/8 just after, then a hundred
    /// rows of 100/8 before carol's 172.16/16, dave's 192.168/16 and 203.0.113/24.
    static func routedTable() -> RoutedNetworksTable {
        var rows: [(first: IPAddress, asn: UInt32)] = (0...10).map { (IPAddress(ipv4: 10 << 24 | UInt32($0) << 16), 64_500 + UInt32($0)) }
        rows.append((IPAddress("11.0.0.0")!, 64_511))
        rows += (0..<100).map { (IPAddress(ipv4: 100 << 24 | UInt32($0) << 16), 64_600) }
        rows += [(IPAddress("172.16.0.0")!, 64_530), (IPAddress("192.168.0.0")!, 64_540), (IPAddress("203.0.113.0")!, 64_550)]
        return RoutedNetworksTable(path: "routed.tsv", networks: RoutedNetworks(rows: rows))
    }

    func reason(_ v: Verdict, _ key: String) -> String? { v.reasons.first { $0.0 == key }?.1 }

    @Test func aRoutedNetworkTableMakesANearbyNetworkRelatedAndIsExplained() throws {
        let table = DetectorTests.routedTable()
        let plain = try trained(config())
        let routed = try trained(config { $0.networks = table })
        #expect(routed.calibration?.networks === table && plain.calibration?.networks == nil)
        let near = IPAddress("11.0.0.7")!, within = EntityHistory.nearRoutedNetworks
        var rng = SeededRandom(seed: 21)
        for user in ["alice", "bob", "erin"] {
            // Every login of the user is in its home row, so any is the nearest.
            let home = IPAddress(Synthetic.address(user, &rng))!
            let distance = try #require(table.networks.distance(near, home))
            #expect(distance <= within && EntityHistory.sharedBits(near, home) < EntityHistory.isolatedBelow.ipv4,
                    "a neighbour in the table, an unrelated network by shared prefix")
            // Whether the risk is lower with the table depends on what the fit saw near
            // home (on a table of a hundred rows, most takeovers); that it is related,
            // and says so, does not.
            let without = try #require(plain.decide(login(user, near.description)))
            let with = try #require(routed.decide(login(user, near.description)))
            #expect(with.risk != nil && without.risk != nil)
            #expect(reason(with, "routed_networks_away") == "\(distance): a related network (within \(within))")
            #expect(reason(with, "asn") == "AS\(table.networks.asn(of: near)!)")
            #expect(reason(with, "nearest_network_asn") == "AS\(table.networks.asn(of: home)!)")
            // Without a table nothing routed is claimed, and the other keys are the same.
            #expect(!without.reasons.contains { ["routed_networks_away", "asn", "nearest_network_asn"].contains($0.0) })
            let keys = Set(with.reasons.map(\.0))
            #expect(without.reasons.map(\.0).allSatisfy { keys.contains($0) || $0 == "main reason" })

            // Far in the table is still unrelated, and alerted.
            let far = try #require(routed.decide(login(user, "203.0.113.50")))
            #expect(far.decision == .alert, "\(user) away: \(far.reasons)")
            let farDistance = try #require(table.networks.distance(IPAddress("203.0.113.50")!, home))
            #expect(reason(far, "routed_networks_away") == "\(farDistance): an unrelated network (more than \(within))")
            // The table has no IPv6 rows: said so rather than guessed.
            let v6 = try #require(routed.decide(login(user, "2001:db8::7")))
            #expect(reason(v6, "asn") == "unknown: the routed-network table has no IPv6 networks")
        }
    }

    @Test func aCalibrationWithAnotherTableRebuildsTheHistoryWithIt() throws {
        // As after a reload that named a table: the running detector gets a
        // calibration fitted with it, and its history then counts routed networks.
        let detector = try trained(config())
        #expect(reason(try #require(detector.decide(login("alice", "11.0.0.7"))), "routed_networks_away") == nil)
        let table = DetectorTests.routedTable()
        let calibration = try #require(Calibration.fit(model: DetectorTests.model, observations: Synthetic.observations(300),
                                                       policy: config { $0.networks = table }))
        detector.install(model: DetectorTests.model, calibration: calibration)
        let v = try #require(detector.decide(login("alice", "11.0.0.7")))
        #expect(reason(v, "routed_networks_away")?.hasSuffix("a related network (within \(EntityHistory.nearRoutedNetworks))") == true)
        // And back: a calibration without a table drops the routed reasons.
        let plain = try #require(Calibration.fit(model: DetectorTests.model, observations: Synthetic.observations(300), policy: config()))
        detector.install(model: DetectorTests.model, calibration: plain)
        #expect(reason(try #require(detector.decide(login("alice", "11.0.0.7"))), "routed_networks_away") == nil)
    }

    @Test func thresholdsDecideBetweenChallengeAndAlert() throws {
        // Nothing can reach an alert threshold of 1: the unrelated login is challenged.
        let detector = try trained(config { $0.thresholds = .init(challenge: .risk(0.5), alert: .risk(1)) })
        let v = try #require(detector.decide(login("alice", "203.0.113.50")))
        #expect(v.decision == .challenge)
        // A service's own thresholds apply to that service only.
        let strict = try trained(config { $0.serviceThresholds["vpn"] = .init(challenge: .risk(0), alert: .risk(0)) })
        var rng = SeededRandom(seed: 1)
        #expect(strict.decide(login("alice", Synthetic.address("alice", &rng), service: "vpn"))?.decision == .alert)
        #expect(strict.decide(login("alice", Synthetic.address("alice", &rng)))?.decision == .allow)
    }

    @Test func falsePositiveRateThresholdsComeFromNormalTraffic() throws {
        let c = config { $0.thresholds = .init(challenge: .falsePositiveRate(0.2), alert: .falsePositiveRate(0.05)) }
        let calibration = try #require(Calibration.fit(model: DetectorTests.model, observations: Synthetic.observations(300), policy: c))
        let t = ResolvedThresholds(policy: c, calibration: calibration)("sshd")
        #expect(t.challenge <= t.alert && t.alert < 1)
        let risks = calibration.allRisks
        let above = risks.filter { $0 >= t.alert }.count
        #expect(Double(above) <= 0.05 * Double(risks.count), "at most 5% of normal logins reach the alert threshold")
        // A reload with other rates needs no new calibration.
        var stricter = c
        stricter.thresholds.alert = .falsePositiveRate(0.5)
        #expect(ResolvedThresholds(policy: stricter, calibration: calibration)("sshd").alert <= t.alert)
        #expect(Calibration.quantile(sorted: [0.1, 0.2, 0.3, 0.4], 0.75) == 0.3.nextUp)
        #expect(Calibration.quantile(sorted: [], 0.99) == 1)
    }

    @Test func failuresAreScoredOnlyWhenConfigured() throws {
        #expect(Detector(policy: config(), model: nil).decide(login("a", "192.0.2.1", outcome: .failure)) == nil)
        let scoring = Detector(policy: config { $0.scoreFailures = true }, model: nil)
        #expect(scoring.decide(login("a", "192.0.2.1", outcome: .failure))?.decision == .learn)
    }

    @Test func anEntityNewerThanTheModelIsJudgedByItsHistory() throws {
        let detector = try trained(config())
        for (n, user) in ["frank", "grace", "heidi", "ivan", "judy", "mike"].enumerated() {
            for k in 0..<8 { detector.remember(user: user, service: "sshd", ip: "10.\(70 + n).\(k % 3).\(k + 1)") }
            let home = try #require(detector.decide(login(user, "10.\(70 + n).1.200")))
            #expect(home.decision == .allow, "\(user) at home: \(home.reasons)")
            let away = try #require(detector.decide(login(user, "203.0.113.9")))
            #expect(away.decision != .allow, "\(user) away: \(away.reasons)")
            #expect(away.dotProduct == nil && away.reasons.contains { $0.1 == "not used: the entity is newer than the model" })
        }
    }

    @Test func userAtServiceKeepsSeparateHistories() throws {
        let detector = Detector(policy: config { $0.entity = .userAtService }, model: nil)
        for k in 0..<5 { detector.remember(user: "alice", service: "sshd", ip: "10.1.0.\(k + 1)") }
        #expect(detector.decide(login("alice", "10.1.0.9"))?.reason == "no-model", "past cold start on sshd")
        let vpn = try #require(detector.decide(login("alice", "10.1.0.9", service: "openvpn")))
        #expect(vpn.reason == "new-entity", "a new entity on the VPN")
    }

    @Test func aSuccessAfterFailuresAgainstManyAccountsIsCredentialStuffing() throws {
        let detector = try trained(config { $0.stuffingMinUsers = 5; $0.stuffingWindow = 3600 })
        var rng = SeededRandom(seed: 9)
        let home = Synthetic.address("carol", &rng)
        // One address fails against four other accounts: not yet enough.
        for victim in ["alice", "bob", "dave", "erin"] {
            #expect(detector.decide(login(victim, home, outcome: .failure)) == nil, "failures are not decided")
        }
        #expect(detector.decide(login("carol", home))?.decision == .allow, "four targets are below the bar")
        _ = detector.decide(login("mallory-probe", home, outcome: .failure))
        let v = try #require(detector.decide(login("carol", home)))
        #expect(v.decision == .alert && v.reason == "credential-stuffing", "\(v.reasons)")
        #expect(v.reasons.first?.1 == "5 failed logins against 5 other accounts from \(home) in the last 1h")
        // The same failures an hour and more later no longer count.
        var later = login("carol", home)
        later.time = 1_700_100_000 + 3700
        #expect(detector.decide(later)?.reason != "credential-stuffing")
        // Failures against the account itself are a forgotten password, not stuffing.
        let own = try trained(config())
        for _ in 0..<10 { _ = own.decide(login("carol", home, outcome: .failure)) }
        #expect(own.decide(login("carol", home))?.decision == .allow)
    }
}
