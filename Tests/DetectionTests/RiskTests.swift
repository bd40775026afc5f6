import IPSightCore
import Testing
@testable import Detection
@testable import IPInsights

@Suite struct EntityHistoryTests {
    func pairs(_ rows: [(String, String)]) -> TrainingPairs {
        var p = TrainingPairs()
        for (e, ip) in rows { p.append(entity: e, ip: IPAddress(ip)!) }
        return p
    }

    @Test func nearestNetworkAndSharedBits() throws {
        let history = EntityHistory(pairs([
            ("alice", "198.51.100.7"), ("alice", "198.51.100.9"), ("alice", "203.0.113.5"),
            ("alice", "2001:db8:1::5"), ("bob", "192.0.2.1"),
        ]))
        let alice = StableHash.xxh64("alice")
        let near = try #require(history.nearest(entityHash: alice, to: IPAddress("198.51.100.200")!))
        #expect(near.bits == 24 && near.address == IPAddress("198.51.100.7") || near.address == IPAddress("198.51.100.9"))
        #expect(history.nearest(entityHash: alice, to: IPAddress("203.0.113.5")!)?.bits == 32)
        // Across families nothing is shared: the IPv6 history answers for IPv6 only.
        #expect(history.nearest(entityHash: alice, to: IPAddress("2001:db8:1::9")!)?.bits == 124)
        #expect(history.nearest(entityHash: StableHash.xxh64("carol"), to: IPAddress("192.0.2.1")!) == nil)
        #expect(history.count(entityHash: alice, in: IPAddress("198.51.7.7")!, length: 16) == 2)
        #expect(history.entityCount == 2 && history.totalPairs == 5)
    }

    @Test func travelRateCountsIsolatedAddressesShrunkToThePool() {
        // dave: 8 logins from one /16, 2 from unrelated networks. erin: 30 from one /16.
        var rows = (0..<8).map { ("dave", "10.20.\($0).1") }
        rows += [("dave", "77.1.1.1"), ("dave", "150.1.1.1")]
        rows += (0..<30).map { ("erin", "10.30.\($0).1") }
        let history = EntityHistory(pairs(rows))
        #expect(history.profiles[StableHash.xxh64("dave")]!.isolated == 2)
        let pooled = 2.0 / 40.0
        #expect(abs(history.pooledTravelRate - pooled) < 1e-12)
        // Two entities are too few to fit a prior: the pooled rate, worth 20 logins.
        let (a, b) = history.travelPrior
        #expect(abs(a - 20 * pooled) < 1e-12 && abs(a + b - EntityHistory.defaultPriorLogins) < 1e-12)
        #expect(abs(history.travelRate(entityHash: StableHash.xxh64("dave")) - (2 + a) / (10 + a + b)) < 1e-12)
        #expect(abs(history.travelRate(entityHash: StableHash.xxh64("erin")) - a / (30 + a + b)) < 1e-12)
        #expect(abs(history.travelRate(entityHash: StableHash.xxh64("nobody")) - pooled) < 1e-12)
    }

    @Test func travelPriorIsFittedToHowRatesVaryBetweenEntities() {
        // Entities whose rates are drawn from Beta(2, 48) (mean 0.04, worth 50 logins)
        // and whose counts are binomial: the fitted prior must find both.
        var rng = SeededRandom(seed: 11)
        func gamma(_ shape: Int) -> Double { (0..<shape).reduce(0) { s, _ in s - log(Double(max(rng.unit(), 1e-12))) } }
        var counts: [(isolated: Int, logins: Int)] = []
        for _ in 0..<6000 {
            let g1 = gamma(2), g2 = gamma(48)
            let rate = g1 / (g1 + g2)
            let logins = 20 + rng.below(300)
            let isolated = (0..<logins).reduce(0) { s, _ in s + (Double(rng.unit()) < rate ? 1 : 0) }
            counts.append((isolated, logins))
        }
        let pooled = Double(counts.reduce(0) { $0 + $1.isolated }) / Double(counts.reduce(0) { $0 + $1.logins })
        let (a, b) = EntityHistory.fitTravelPrior(counts, pooled: pooled)
        #expect(abs(a / (a + b) - 0.04) < 0.004, "mean \(a / (a + b))")
        #expect(a + b > 35 && a + b < 70, "strength \(a + b)")
        // Without variation between entities the prior grows strong.
        let uniform = (0..<3000).map { _ in
            let logins = 50 + rng.below(100)
            return (isolated: (0..<logins).reduce(0) { s, _ in s + (rng.unit() < 0.05 ? 1 : 0) }, logins: logins)
        }
        let (ua, ub) = EntityHistory.fitTravelPrior(uniform, pooled: 0.05)
        #expect(ua + ub > 500, "strength \(ua + ub)")
    }

    @Test func networksAcrossEntities() throws {
        // Networks in use: 10.0.1/24 (alice, bob), 10.0.2/24 (carol), 10.0.3/24 (carol),
        // 10.0.9/24 (alice); 10.5.0/24 (bob, over IPv6 too).
        let history = EntityHistory(pairs([
            ("alice", "10.0.1.1"), ("alice", "10.0.1.2"), ("alice", "10.0.9.1"),
            ("bob", "10.0.1.7"), ("bob", "10.5.0.1"), ("bob", "2001:db8:1::1"),
            ("carol", "10.0.2.1"), ("carol", "10.0.3.1"),
        ]))
        #expect(history.entities(inNetworkOf: IPAddress("10.0.1.200")!, wide: false) == 2)
        #expect(history.entities(inNetworkOf: IPAddress("10.0.77.1")!, wide: true) == 3)
        #expect(history.entities(inNetworkOf: IPAddress("10.0.77.1")!, wide: false) == 0)
        #expect(history.entities(inNetworkOf: IPAddress("2001:db8:2::")!, wide: true) == 1)
        #expect(history.entities(inNetworkOf: IPAddress("2001:db8:2::")!, wide: false) == 0 && history.entities(inNetworkOf: IPAddress("2001:db8:1:2::")!, wide: false) == 1)
        let alice = StableHash.xxh64("alice"), bob = StableHash.xxh64("bob"), carol = StableHash.xxh64("carol")
        // Logins per family; the nearest address is looked for within the family.
        let p = try #require(history.profiles[bob])
        #expect(p.ipv4 == 2 && p.logins(family: IPAddress("2001:db8::1")!) == 1)
        #expect(history.count(entityHash: alice, in: IPAddress("10.0.1.99")!, length: 24) == 2)
        #expect(history.uses(entityHash: carol, network: IPAddress("10.0.3.99")!, length: 24))
        #expect(!history.uses(entityHash: carol, network: IPAddress("10.0.4.99")!, length: 24))
        // How common the network is, without the entity itself.
        let facts = RiskModel.facts(dotProduct: 0, history: history, entityHash: alice, ip: IPAddress("10.0.1.50")!)
        #expect(facts.networkEntities.narrow == 1 && facts.networkEntities.wide == 2 && facts.sharedBits >= 24)
        let v6 = RiskModel.facts(dotProduct: 0, history: history, entityHash: alice, ip: IPAddress("2001:db8:1::1")!)
        #expect(v6.familyLogins == 0 && v6.sharedBits == 0 && v6.nearest == nil && v6.networkEntities.narrow == 1)
    }
}

@Suite struct RoutedNetworksTests {
    func pairs(_ rows: [(String, String)]) -> TrainingPairs {
        var p = TrainingPairs()
        for (e, ip) in rows { p.append(entity: e, ip: IPAddress(ip)!) }
        return p
    }

    /// Rows 0...: 10.0.0.0/24 (AS 1), then 10.0.1.0/24 ... one /24 each (AS 2) up to
    /// 10.0.99.0/24, then 10.1.0.0/16 (AS 3), a hundred /24s of 20.0/16 (AS 5) and
    /// 150.0.0.0/8 (AS 4); one IPv6 row.
    func table() -> RoutedNetworks {
        var rows: [(first: IPAddress, asn: UInt32)] = [(IPAddress("150.0.0.0")!, 4), (IPAddress("2001:db8::")!, 6)]
        rows += (0..<100).map { (IPAddress("10.0.\($0).0")!, $0 == 0 ? 1 : 2) }
        rows.append((IPAddress("10.1.0.0")!, 3))
        rows += (0..<100).map { (IPAddress("20.0.\($0).0")!, 5) }
        return RoutedNetworks(rows: rows)
    }

    @Test func rowsDistancesAndASNs() {
        let t = table()
        #expect(t.count == 203)
        #expect(t.row(of: IPAddress("10.0.0.9")!) == 0 && t.row(of: IPAddress("10.0.5.200")!) == 5)
        // Unrouted space between rows belongs to the row before; below every row, to the first.
        #expect(t.row(of: IPAddress("10.200.0.1")!) == 100 && t.row(of: IPAddress("1.1.1.1")!) == 0)
        #expect(t.distance(IPAddress("10.0.3.1")!, IPAddress("10.0.90.1")!) == 87)
        #expect(t.distance(IPAddress("10.0.3.1")!, IPAddress("10.0.3.250")!) == 0)
        #expect(t.distance(IPAddress("10.0.3.1")!, IPAddress("2001:db8::1")!) == nil)
        #expect(t.asn(of: IPAddress("10.1.77.1")!) == 3 && t.asn(of: IPAddress("2001:db8:5::")!) == 6)
        #expect(RoutedNetworks().row(of: IPAddress("10.0.0.1")!) == nil)
    }

    @Test func unrelatedNetworksAreCountedInRoutedNetworks() throws {
        // 10.0.1.1 and 10.0.90.1 share 17 bits but lie 89 routed networks apart;
        // 10.1.0.1 shares only 15 bits with 10.0.99.1 yet is the next routed network.
        let rows = [("ann", "10.0.1.1"), ("ann", "10.0.1.2"), ("ann", "10.0.90.1"),
                    ("ben", "10.0.99.1"), ("ben", "10.0.99.2"), ("ben", "10.1.0.1"), ("ben", "150.1.1.1")]
        let plain = EntityHistory(pairs(rows)), routed = EntityHistory(pairs(rows), networks: table())
        let ann = StableHash.xxh64("ann"), ben = StableHash.xxh64("ben")
        #expect(plain.profiles[ann]!.isolated == 0 && routed.profiles[ann]!.isolated == 1)
        #expect(plain.profiles[ben]!.isolated == 1 && routed.profiles[ben]!.isolated == 1, "150/8 is unrelated either way")
        #expect(plain.routedDistance(entityHash: ann, to: IPAddress("10.0.50.1")!) == nil)
        #expect(routed.routedDistance(entityHash: ann, to: IPAddress("10.0.50.1")!) == 40)
        #expect(routed.routedDistance(entityHash: ann, to: IPAddress("2001:db8::1")!) == nil)

        let far = RiskModel.facts(dotProduct: 0, history: routed, entityHash: ann, ip: IPAddress("10.0.80.9")!)
        #expect(far.sharedBits >= 12 && far.routedDistance == 10 && !far.unrelated)
        let farPlain = RiskModel.facts(dotProduct: 0, history: plain, entityHash: ben, ip: IPAddress("10.0.20.9")!)
        let farRouted = RiskModel.facts(dotProduct: 0, history: routed, entityHash: ben, ip: IPAddress("10.0.20.9")!)
        #expect(!farPlain.unrelated && farRouted.unrelated && farRouted.routedDistance == 79)
        // Without a table the routed feature is constant, so it carries no weight.
        func routedFeature(_ f: RiskModel.Facts, _ h: EntityHistory) -> Double {
            let k = RiskModel.baseFeatureNames.firstIndex(of: "routed networks away")!
            return RiskModel.features(f, history: h)[f.regime.rawValue * RiskModel.baseFeatureNames.count + k]
        }
        #expect(routedFeature(farPlain, plain) == 0)
        #expect(routedFeature(farRouted, routed) > routedFeature(far, routed))
    }

    @Test func riskUsesTheTableAndExplainsIt() throws {
        // Users at home in their own /24 of 10.0/16; a login 30 routed networks from
        // home is a neighbour to the table, a login in 150/8 unrelated.
        var rng = SeededRandom(seed: 5)
        var history = TrainingPairs(), heldOut = TrainingPairs()
        for u in 0..<100 {
            let logins = u < 10 ? 300 : 30
            for k in 0..<logins {
                let net = k % 15 == 0 ? 1 + rng.below(99) : u % 99 + 1
                let ip = IPAddress(ipv4: UInt32(10 << 24 | net << 8 | rng.below(256)))
                if k % 10 == 0 { heldOut.append(entity: "u\(u)", ip: ip) } else { history.append(entity: "u\(u)", ip: ip) }
            }
        }
        var hp = Hyperparameters(numEntityVectors: 200, vectorDim: 8)
        hp.epochs = 1
        let model = Model(hyperparameters: hp)
        model.initialise(seed: 1)
        let assessor = RiskAssessor(model: model, history: history, heldOut: heldOut, networks: table())
        #expect(assessor.history.networks != nil)
        let away = assessor.assess(entityHash: StableHash.xxh64("u50"), ip: IPAddress("150.2.3.4")!, dotProduct: 0)
        let home = assessor.assess(entityHash: StableHash.xxh64("u50"), ip: IPAddress("10.0.51.4")!, dotProduct: 0)
        #expect(away.facts.unrelated && !home.facts.unrelated && away.risk > home.risk)
        #expect(!away.mainReason.isEmpty && home.nearestNetwork == "10.0.51.0/24")
    }
}

@Suite struct RiskModelTests {
    @Test func logisticRegressionRecoversKnownWeights() {
        // Labels drawn from a known logistic model; the fit must find its weights.
        var rng = SeededRandom(seed: 4)
        let truth = RiskModel.featureNames.indices.map { [1.5, -2, 0.5, 0, 0, 1, 0, -0.7, 0.3][$0 % 9] }
        var x: [[Double]] = [], y: [Double] = []
        for _ in 0..<100_000 {
            let row = (0..<truth.count).map { _ in Double(rng.gaussian()) }
            let z = zip(truth, row).reduce(0.3) { $0 + $1.0 * $1.1 }
            x.append(row)
            y.append(Double(rng.unit()) < 1 / (1 + exp(-z)) ? 1 : 0)
        }
        let fitted = RiskModel.logisticRegression(x, y)
        #expect(truth.count == RiskModel.featureNames.count)
        for j in truth.indices {
            // Weights are on standardised features: undo the scale to compare.
            #expect(abs(fitted.weights[j] / fitted.scales[j] - truth[j]) < 0.08, "feature \(j)")
        }
    }

    @Test func featuresBeyondTheCalibrationRangeCountAsItsEdge() {
        // Feature 0 separates the classes and spans [-1, 1]; every other feature is
        // almost constant in calibration, as the travel rate is when nobody travels.
        var rng = SeededRandom(seed: 9)
        let k = RiskModel.featureNames.count
        var x: [[Double]] = [], y: [Double] = []
        for i in 0..<4_000 {
            var row = (0..<k).map { _ in 0.001 * Double(rng.gaussian()) }
            row[0] = Double(rng.unit()) * 2 - 1
            x.append(row)
            y.append(i % 2 == 0 ? (row[0] > 0 ? 1 : 0) : (row[0] > 0.5 ? 1 : 0))
        }
        let fitted = RiskModel.logisticRegression(x, y)
        var edge = [Double](repeating: 0, count: k), beyond = edge
        edge[0] = fitted.highs[0]
        beyond[0] = 50
        #expect(fitted.logOdds(beyond) == fitted.logOdds(edge), "no extrapolation beyond the largest value seen")
        // A drifted near-constant feature moves the log odds by no more than its calibration spread allows.
        var drifted = edge
        for j in 1..<k { drifted[j] = 3 }
        #expect(abs(fitted.logOdds(drifted) - fitted.logOdds(edge)) < 1, "\(fitted.logOdds(drifted)) vs \(fitted.logOdds(edge))")
        #expect(fitted.contributions(beyond)[0].logOdds == fitted.contributions(edge)[0].logOdds)
    }

    @Test func solveHandlesPivoting() {
        let x = RiskModel.solve([[0, 2, 1], [1, 1, 0], [3, 0, 1]], [6, 3, 5])
        // 0a + 2b + c = 6, a + b = 3, 3a + c = 5 (the first pivot is 0: rows must swap)  →  a = 1, b = 2, c = 2
        #expect(abs(x[0] - 1) < 1e-12 && abs(x[1] - 2) < 1e-12 && abs(x[2] - 2) < 1e-12)
    }

    @Test func riskRisesForUnrelatedNetworksOfQuietUsers() throws {
        // Busy users log in from their own /16; quiet ones too, rarely.
        var rng = SeededRandom(seed: 9)
        var history = TrainingPairs(), heldOut = TrainingPairs()
        for u in 0..<200 {
            let logins = u < 20 ? 400 : 20
            for k in 0..<logins {
                let ip = IPAddress(ipv4: UInt32(10 << 24 | u << 16 | rng.below(65536)))
                if k % 10 == 0 { heldOut.append(entity: "u\(u)", ip: ip) } else { history.append(entity: "u\(u)", ip: ip) }
            }
        }
        var hp = Hyperparameters(numEntityVectors: 400, vectorDim: 8)
        hp.epochs = 1
        let model = Model(hyperparameters: hp)
        model.initialise(seed: 1)
        let entityHistory = EntityHistory(history)
        let risk = RiskModel.fit(model: model, history: entityHistory, normal: heldOut)
        // Log odds, which do not saturate as the risk does near 1.
        func value(_ user: String, _ ip: String) -> Double {
            let facts = RiskModel.facts(dotProduct: 0, history: entityHistory, entityHash: StableHash.xxh64(user), ip: IPAddress(ip)!)
            return risk.logOdds(RiskModel.features(facts, history: entityHistory))
        }
        #expect(value("u150", "10.150.3.4") < 0, "a quiet user at home")
        #expect(value("u150", "77.77.3.4") > 2, "a quiet user across the internet")
        #expect(value("u5", "77.77.3.4") < value("u150", "77.77.3.4"), "the same network is less alarming for a busy user")
    }
}

#if canImport(Glibc)
import Glibc
#endif
