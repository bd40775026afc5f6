import Testing
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

@Suite struct RiskModelTests {
    @Test func logisticRegressionRecoversKnownWeights() {
        // Labels drawn from a known logistic model; the fit must find its weights.
        var rng = SeededRandom(seed: 4)
        let truth = RiskModel.featureNames.indices.map { [1.5, -2, 0.5, 0, 0, 1, 0, -0.7, 0.3][$0 % 9] }
        var x: [[Double]] = [], y: [Double] = []
        for _ in 0..<40_000 {
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
        func value(_ user: String, _ ip: String) -> Double {
            let facts = RiskModel.facts(dotProduct: 0, history: entityHistory, entityHash: StableHash.xxh64(user), ip: IPAddress(ip)!)
            return risk.risk(RiskModel.features(facts, history: entityHistory))
        }
        #expect(value("u150", "10.150.3.4") < 0.2, "a quiet user at home")
        #expect(value("u150", "10.77.3.4") > 0.5, "a quiet user in someone else's network")
        #expect(value("u5", "10.77.3.4") < value("u150", "10.77.3.4"), "the same network is less alarming for a busy user")
    }
}

#if canImport(Glibc)
import Glibc
#endif
