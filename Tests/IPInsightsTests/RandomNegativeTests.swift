import IPSightCore
import Testing
@testable import IPInsights

/// Random negatives drawn from a routed-network table: each network equally
/// likely, each address inside its network, the uniform draw kept for a family the
/// table lacks, and a model trained on them ranks its entities' networks above
/// the table's.
@Suite struct RandomNegativeTests {
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    /// Networks of very different sizes, and a gap after 203.0.113.0/25.
    static let table = RoutedNetworks(ranges: [
        (ip("10.0.0.0"), ip("10.255.255.255"), 1),
        (ip("192.0.2.0"), ip("192.0.2.255"), 2),
        (ip("198.51.100.7"), ip("198.51.100.7"), 3),
        (ip("203.0.113.0"), ip("203.0.113.127"), 4),
        (ip("2001:db8::"), ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff"), 5),
        (ip("2001:db8:1::"), ip("2001:db8:1::ff"), 6),
    ])

    /// The index of the table range holding `address`, checking it lies inside it.
    static func range(of address: IPAddress) -> Int? {
        let t = table
        if let v4 = address.ipv4 {
            return t.ipv4Starts.indices.first { t.ipv4Starts[$0] <= v4 && v4 <= t.ipv4Lasts[$0] }
        }
        return t.ipv6Starts.indices.first { t.ipv6Starts[$0] <= address && address <= t.ipv6Lasts[$0] }
    }

    @Test func everyNetworkIsEquallyLikelyWhateverItsSize() {
        var rng = SeededRandom(seed: 7)
        var counts = [Int](repeating: 0, count: 4)
        var secondOctets = Set<UInt32>()
        let draws = 40_000
        for _ in 0..<draws {
            let address = Self.table.randomAddress(ipv4: true, using: &rng)!
            guard let r = Self.range(of: address) else {
                Issue.record("\(address) lies in no network of the table")
                return
            }
            counts[r] += 1
            if r == 0 { secondOctets.insert((address.ipv4! >> 16) & 0xFF) }
        }
        // A quarter each, within four standard deviations (about 350).
        for (r, n) in counts.enumerated() {
            #expect(abs(n - draws / 4) < 400, "network \(r) drawn \(n) times of \(draws)")
        }
        #expect(secondOctets.count == 256, "addresses spread over the whole /8 (\(secondOctets.count) second octets)")
    }

    @Test func ipv6AddressesSpreadOverRangesWiderThan64Bits() {
        var rng = SeededRandom(seed: 8)
        var counts = [0, 0]
        var groups = Set<UInt64>(), lowHalves = 0
        for _ in 0..<10_000 {
            let address = Self.table.randomAddress(ipv4: false, using: &rng)!
            guard let r = Self.range(of: address) else {
                Issue.record("\(address) lies in no network of the table")
                return
            }
            counts[r] += 1
            if r == 0 {
                groups.insert(address.high & 0xFFFF)          // the fourth group, inside the /48
                if address.low < 1 << 63 { lowHalves += 1 }
            }
        }
        #expect(abs(counts[0] - 5_000) < 250 && abs(counts[1] - 5_000) < 250, "\(counts)")
        #expect(groups.count > 3_000, "the /48's 65,536 subnets are all drawn from (\(groups.count) distinct)")
        #expect(abs(Double(lowHalves) / Double(counts[0]) - 0.5) < 0.05, "the low 64 bits are uniform")
    }

    @Test func rowsWithoutLastAddressesEndWhereTheNextBegins() {
        let t = RoutedNetworks(rows: [(Self.ip("1.0.1.0"), 2), (Self.ip("1.0.0.0"), 1), (Self.ip("2001:db8::"), 3)])
        #expect(t.ipv4Starts == [Self.ip("1.0.0.0").ipv4!, Self.ip("1.0.1.0").ipv4!])
        #expect(t.ipv4Lasts == [Self.ip("1.0.0.255").ipv4!, UInt32.max])
        #expect(t.ipv6Lasts == [IPAddress(high: .max, low: .max)])
        #expect(Self.ip("1.0.1.0").predecessor == Self.ip("1.0.0.255"))
        #expect(Self.ip("2001:db8:1::").predecessor == Self.ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff"))
    }

    @Test func aFamilyTheTableLacksKeepsTheUniformDraw() throws {
        let v4Only = RoutedNetworks(ranges: [(Self.ip("192.0.2.0"), Self.ip("192.0.2.255"), 1)])
        var rng = SeededRandom(seed: 9)
        #expect(v4Only.randomAddress(ipv4: false, using: &rng) == nil)
        #expect(RoutedNetworks().randomAddress(ipv4: true, using: &rng) == nil)

        let negatives = RandomNegatives.routed(v4Only)
        var v6Prefixes = Set<UInt64>()
        for _ in 0..<1_000 {
            let v4 = RandomNegatives.address(like: Self.ip("10.1.2.3"), from: negatives.table, using: &rng)
            #expect(v4.ipv4.map { $0 >> 8 } == Self.ip("192.0.2.0").ipv4! >> 8, "\(v4) is not in 192.0.2.0/24")
            let v6 = RandomNegatives.address(like: Self.ip("2001:db8::1"), from: negatives.table, using: &rng)
            #expect(!v6.isIPv4 && v6.high >> 61 == 1, "\(v6) is not global unicast")
            v6Prefixes.insert(v6.high >> 32)
        }
        #expect(v6Prefixes.count > 990, "IPv6 negatives are uniform, not from the table")
    }

    @Test func aModelTrainedOnRoutedNegativesRanksItsEntitiesNetworksFirst() throws {
        let pairs = try IterateAverageTests.data()       // 40 entities in 10.0.E.0/24, some travel
        // Eight /16s nobody lives in: the networks the negatives come from.
        var ranges: [(first: IPAddress, last: IPAddress, asn: UInt32)] = []
        for k: UInt32 in 0..<8 {
            let first: UInt32 = 172 << 24 | (16 + k) << 16
            ranges.append((IPAddress(ipv4: first), IPAddress(ipv4: first | 0xFFFF), k))
        }
        let networks = RoutedNetworks(ranges: ranges)
        // Six epochs: three are not quite enough for the shared family row and the
        // networks' own rows to settle on so little data.
        let model = try IterateAverageTests.model(epochs: 6)
        let trainer = Trainer(model: model, seed: 3, threads: 1)
        trainer.randomNegatives = .routed(networks)
        _ = trainer.train(pairs)
        var rng = SeededRandom(seed: 5)
        var ranked = 0
        let n = 2_000
        for _ in 0..<n {
            let user = rng.below(40)
            let own = IPAddress(ipv4: UInt32(10 << 24 | user << 8 | rng.below(256)) as UInt32)
            let away = networks.randomAddress(ipv4: true, using: &rng)!
            if model.score(entity: "user\(user)", ip: own) > model.score(entity: "user\(user)", ip: away) { ranked += 1 }
        }
        #expect(Double(ranked) / Double(n) > 0.95, "own networks rank above the table's (\(ranked) of \(n))")
        #expect(Evaluation.discriminatorAUC(model: model, pairs: pairs) > 0.8, "and above random addresses")
    }
}
