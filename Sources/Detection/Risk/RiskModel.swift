#if canImport(Glibc)
import IPInsights
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A calibrated risk for a login: the probability that (entity, address) is an
/// account takeover rather than the entity's own login, at even prior odds.
///
/// `dot_product` says how well the address fits the entity's learnt networks and,
/// with the activity prior, how active the account is; but for an unrelated
/// network it knows the entity's habit of travelling only as far as the embedding
/// learnt it. Attackers pick accounts regardless of how active they are, and some
/// people never travel; so the risk also weighs how active the entity is over the
/// address's family, how often it logs in from unrelated networks, and how close
/// the address is to its history. The weights come from logistic regression
/// on held-out normal logins against synthetic takeovers (a uniformly chosen known
/// entity with an address near some other entity's network).
public struct RiskModel: Sendable, Equatable {
    /// What a login is measured by; each counts separately for a login from a
    /// network unrelated to the entity's and for one near it (`featureNames`).
    public static let baseFeatureNames = [
        "dot_product", "negative dot_product", "shared prefix with history", "activity",
        "travel rate", "same /16 (/32) as history", "same /24 (/48) as history", "unrelated network × activity",
        "unrelated network × travel rate", "IPv6", "new address family", "IPv6 × shared prefix",
        "routed networks away", "new network × accounts in its /24 (/48)", "new network × accounts in its AS (/16, /32)",
        "own logins in the same network", "own logins within 8 networks", "own logins within 64 networks",
    ]

    /// Where a login lies from the entity's networks: the regimes the features are
    /// weighed in apart. A neighbour of home, a network in the same region (or
    /// provider) and one across the internet differ from a takeover in different
    /// ways: near home a takeover is a network the entity's logins do not reach;
    /// across the internet it is an account that seldom travels. One regression fits
    /// all three (the regime flags' weights carry how much likelier each regime is
    /// for a takeover than for the entity itself).
    public enum Regime: Int, CaseIterable, Sendable {
        /// Within `nearRoutedNetworks` routed networks of a known address (no table: sharing `isolatedBelow` bits).
        case related
        /// Within `regionRoutedNetworks` (no table: sharing at least 8 bits of IPv4, 16 of IPv6).
        case region
        /// Farther.
        case unrelated

        var suffix: String { " (\(self) network)" }
    }

    /// Routed networks within which an address is in the entity's region.
    public static let regionRoutedNetworks = 4096

    /// The weighed features: each base feature in each regime, then the flags of
    /// the region and unrelated regimes.
    public static let featureNames = Regime.allCases.flatMap { regime in baseFeatureNames.map { $0 + regime.suffix } }
        + ["region network", "unrelated network"] + sharedFeatureNames

    /// Weighed alike in every regime: what the organisation knows of a network is
    /// rare evidence in any one regime, so all logins inform it together.
    public static let sharedFeatureNames = ["accounts in the network (new network)", "accounts in its AS (new network)"]

    /// The base feature a weighed feature measures.
    public static func baseName(_ name: String) -> String {
        for regime in Regime.allCases where name.hasSuffix(regime.suffix) { return String(name.dropLast(regime.suffix.count)) }
        return name
    }

    public var means: [Double]
    public var scales: [Double]
    /// One weight per feature, then the intercept.
    public var weights: [Double]
    /// The range of each feature in the calibration rows. A login is scored with its
    /// features held to that range: a linear model knows nothing beyond it, and a
    /// history that drifted since calibration (a feature that was nearly constant
    /// then) must not swing the log odds by tens of units.
    public var lows: [Double]
    public var highs: [Double]

    /// What the risk is made of for one login.
    public struct Facts: Sendable {
        public var dotProduct: Float
        public var sharedBits: Int
        public var familyBits: Int
        /// The entity's logins in its history, and those over the address's family.
        public var logins: Int
        public var familyLogins: Int
        public var travelRate: Double
        public var nearest: IPAddress?
        /// Other entities that used the address's /24 (/48) and /16 (/32): how
        /// common the network is across the organisation.
        public var networkEntities: (narrow: Int, wide: Int)
        /// Other entities that used the address's AS (with a routed-network table).
        public var asEntities: Int
        /// The shares of the entity's logins within `EntityHistory.densityWidths` networks of the address.
        public var density: [Double]
        /// Routed networks between the address and the entity's nearest known one
        /// (with a routed-network table and a history in the family).
        public var routedDistance: Int?
        /// An unrelated network: more than `nearRoutedNetworks` routed networks
        /// away with a table, else fewer than `isolatedBelow` shared bits.
        public var unrelated: Bool
        /// Which regime the login's features are weighed in.
        public var regime: Regime
    }

    /// The facts of a login. `donor` is for synthetic takeovers: the entity whose
    /// network the address was copied from does not count among its users.
    public static func facts(dotProduct: Float, history: EntityHistory, entityHash: UInt64, ip: IPAddress,
                             donor: UInt64? = nil) -> Facts {
        let profile = history.profiles[entityHash]
        let near = history.nearest(entityHash: entityHash, to: ip)
        let v4 = ip.isIPv4
        let lengths = v4 ? EntityHistory.networkLengths.ipv4 : EntityHistory.networkLengths.ipv6
        // How common the network is among the others: not counting the entity itself.
        var narrow = history.entities(inNetworkOf: ip, wide: false), wide = history.entities(inNetworkOf: ip, wide: true)
        var inAS = history.entities(inASOf: ip)
        for other in [entityHash, donor].compactMap({ $0 }) {
            if narrow > 0, history.uses(entityHash: other, network: ip, length: lengths.narrow) { narrow -= 1 }
            if wide > 0, history.uses(entityHash: other, network: ip, length: lengths.wide) { wide -= 1 }
            if inAS > 0, history.usesAS(entityHash: other, of: ip) { inAS -= 1 }
        }
        let familyShared = near.map { $0.address.isIPv4 == v4 } ?? false
        let bits = familyShared ? near!.bits : 0
        let routed = history.routedDistance(entityHash: entityHash, to: ip)
        let unrelated = routed.map { $0 > EntityHistory.nearRoutedNetworks }
            ?? (bits < (v4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6))
        let regional = routed.map { $0 <= regionRoutedNetworks } ?? (bits >= (v4 ? 8 : 16))
        let regime: Regime = !unrelated ? .related : regional ? .region : .unrelated
        return Facts(dotProduct: dotProduct, sharedBits: bits, familyBits: v4 ? 32 : 64,
                     logins: profile?.count ?? 0, familyLogins: profile?.logins(family: ip) ?? 0,
                     travelRate: history.travelRate(entityHash: entityHash), nearest: familyShared ? near?.address : nil,
                     networkEntities: (narrow, wide), asEntities: inAS,
                     density: history.density(entityHash: entityHash, ip: ip), routedDistance: routed, unrelated: unrelated,
                     regime: regime)
    }

    /// The features of a login, before standardisation.
    public static func features(_ f: Facts, history: EntityHistory) -> [Double] {
        var out = [Double](repeating: 0, count: featureNames.count)
        out.withUnsafeMutableBufferPointer { features(f, history: history, into: $0.baseAddress!) }
        return out
    }

    /// The features of a login, written to `out` (`featureNames.count` values).
    public static func features(_ f: Facts, history: EntityHistory, into out: UnsafeMutablePointer<Double>) {
        let dot = Double(f.dotProduct)
        let v4 = f.familyBits == 32
        let isolatedBelow = v4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6
        // Below `isolatedBelow` bits the network is unrelated whatever the count:
        // travel and takeovers share prefixes only by chance, so the count is noise.
        let shared = min(Double(max(f.sharedBits, isolatedBelow)) / Double(f.familyBits), 1)
        let entities = Double(max(history.entityCount, 1)), total = Double(max(history.totalPairs, 1))
        // How often the entity logs in over this family: attackers choose their
        // address family regardless of the account's habits.
        let activity = log((Double(f.familyLogins) + 0.5) * entities / total)
        let travel = log(f.travelRate)
        let unrelated = f.unrelated
        // Routed networks away on a log scale (2^20 rows is more than any table
        // has); without a history in the family, as far as can be.
        let routed = history.networks == nil ? 0 : f.routedDistance.map { min(log2(1 + Double($0)) / 20, 1) } ?? 1
        // What the organisation knows of a network the entity has not used: how many
        // other accounts log in from it (a VPN, an office) or from its AS (a carrier).
        let newNetwork = f.sharedBits < (v4 ? EntityHistory.networkLengths.ipv4.narrow : EntityHistory.networkLengths.ipv6.narrow)
        let accountsNarrow = newNetwork ? log(1 + Double(f.networkEntities.narrow)) : 0
        let accountsWide = newNetwork ? log(1 + Double(history.networks == nil ? f.networkEntities.wide : f.asEntities)) : 0
        // How dense the entity's own logins are around the address (log shares).
        let density = f.density.map { log($0 + 1e-3) }
        let base: [Double] = [
            dot / 10, min(dot, 0) / 10, shared, activity, travel,
            f.sharedBits >= (v4 ? 16 : 32) ? 1 : 0, f.sharedBits >= (v4 ? 24 : 48) ? 1 : 0,
            unrelated ? activity : 0, unrelated ? travel : 0,
            // IPv6 prefixes on their own scale: a shared /32 is not a shared /16.
            v4 ? 0 : 1, f.familyLogins == 0 ? 1 : 0, v4 ? 0 : shared, routed,
            0, 0, density[0], density[1], density[2],
        ]
        let k = base.count, regimes = Regime.allCases.count
        for i in 0..<featureNames.count { out[i] = 0 }
        out[k * regimes + 2] = accountsNarrow
        out[k * regimes + 3] = accountsWide
        for (i, v) in base.enumerated() {
            out[f.regime.rawValue * k + i] = v
        }
        out[k * regimes] = f.regime == .region ? 1 : 0
        out[k * regimes + 1] = f.regime == .unrelated ? 1 : 0
    }

    /// Log odds of takeover against the entity's own login.
    public func logOdds(_ features: [Double]) -> Double {
        var z = weights[features.count]
        for i in features.indices { z += term(i, features[i]) }
        return z
    }

    /// Feature `i`'s share of the log odds: weight × standardised value, within the calibration range.
    @inline(__always)
    func term(_ i: Int, _ value: Double) -> Double {
        weights[i] * (min(max(value, lows[i]), highs[i]) - means[i]) / scales[i]
    }

    public func risk(_ features: [Double]) -> Double { 1 / (1 + exp(-logOdds(features))) }

    /// Each feature's share of the log odds (weight × standardised value), for explanations.
    public func contributions(_ features: [Double]) -> [(name: String, logOdds: Double)] {
        features.indices.map { (RiskModel.featureNames[$0], term($0, features[$0])) }
    }

    /// Fits the weights: `normal` are logins the history and the model have not seen
    /// (a held-out slice), the takeovers are made up from the history: as many as
    /// there are normal logins, each a uniformly chosen known entity (attackers pick
    /// accounts regardless of activity) with an address in a network another
    /// uniformly chosen entity logged in from.
    public static func fit(model: Model, history: EntityHistory, normal: TrainingPairs, seed: UInt64 = 7,
                           threads: Int = 2) -> RiskModel {
        var rng = SeededRandom(seed: seed)
        let entities = Array(history.profiles.keys).sorted()
        var hashes: [UInt64] = [], ips: [IPAddress] = [], donors: [UInt64?] = []
        for i in 0..<normal.count where history.profiles[normal.entityHashes[i]] != nil {
            hashes.append(normal.entityHashes[i])
            ips.append(normal.ips[i])
            donors.append(nil)
        }
        let positives = hashes.count
        if entities.count >= 2 {
            // Takeovers of uniformly chosen accounts: five in six from a random network
            // (the tutorial's attacks), one in six from the victim's region (careful
            // attackers evade geography: 64 to 4,096 routed networks away, where its
            // own logins rarely are). A random network is a routed one with a table;
            // without one, the nearest thing is another account's network with its
            // host part drawn at random (a /20), that account not counted among the
            // network's users. Never the networks the organisation itself shares:
            // drawing takeovers there would teach that a shared VPN is an attacker's.
            // Nearer than 64 networks a takeover looks like the entity's own drift,
            // and fitting it would spend the false-positive budget on its home.
            for k in 0..<positives {
                let target = entities[rng.below(entities.count)]
                hashes.append(target)
                let own = history.profiles[target]!
                let victim = history.addresses[own.start + rng.below(own.count)]
                if k % 6 == 5 {
                    ips.append(nearAddress(victim, networks: history.networks, &rng))
                    donors.append(nil)
                } else if let networks = history.networks, let ip = networks.randomAddress(ipv4: victim.isIPv4, using: &rng) {
                    ips.append(ip)
                    donors.append(nil)
                } else if k % 6 == 4 {
                    // Without a table, some takeovers from anywhere in the family: every
                    // regime needs takeovers to weigh, even where no account goes.
                    ips.append(uniformAddress(like: victim, &rng))
                    donors.append(nil)
                } else {
                    // A network of one account, not one the organisation shares (used by
                    // half a percent of its accounts: a VPN, an office; a few tries).
                    let shared = max(3, entities.count / 200)
                    var donor = target, address = victim
                    for _ in 0..<8 {
                        donor = entities[rng.below(entities.count)]
                        while donor == target { donor = entities[rng.below(entities.count)] }
                        let p = history.profiles[donor]!
                        address = history.addresses[p.start + rng.below(p.count)]
                        if history.entities(inNetworkOf: address, wide: false) < shared { break }
                    }
                    ips.append(takeoverAddress(near: address, &rng))
                    donors.append(donor)
                }
            }
        }
        let rows = hashes.map { Int32($0 % UInt64(model.hyperparameters.numEntityVectors)) }
        let dots = BatchScorer(model: model, threads: threads).score(entityRows: rows, ips: ips)
        let k = featureNames.count
        var x = [Double](repeating: 0, count: hashes.count * k)
        x.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            Parallel.chunks(hashes.count, parts: max(1, min(threads, hashes.count / 1000))) { _, lo, hi in
                for i in lo..<hi {
                    let f = facts(dotProduct: dots[i], history: history, entityHash: hashes[i], ip: ips[i], donor: donors[i])
                    features(f, history: history, into: base + i * k)
                }
            }
        }
        let y = hashes.indices.map { $0 >= positives ? 1.0 : 0.0 }
        return logisticRegression(flat: x, y, threads: threads)
    }

    /// A uniformly random public address of `victim`'s family (IPv4 outside 0/8,
    /// 10/8, 127/8 and 224/3; IPv6 in 2000::/3).
    static func uniformAddress(like victim: IPAddress, _ rng: inout SeededRandom) -> IPAddress {
        guard victim.isIPv4 else { return IPAddress(high: 0x2000_0000_0000_0000 | (rng.next() >> 3), low: rng.next()) }
        while true {
            let v4 = UInt32(truncatingIfNeeded: rng.next() >> 32)
            let first = v4 >> 24
            if first != 0 && first != 10 && first != 127 && first < 224 { return IPAddress(ipv4: v4) }
        }
    }

    /// An address in a network another entity uses: a history address with its host
    /// part (the last 12 bits of IPv4, 80 of IPv6) drawn at random.
    static func takeoverAddress(near base: IPAddress, _ rng: inout SeededRandom) -> IPAddress {
        if let v4 = base.ipv4 {
            return IPAddress(ipv4: (v4 & ~0xFFF) | UInt32(truncatingIfNeeded: rng.next() & 0xFFF))
        }
        return IPAddress(high: (base.high & ~0xFFFF) | (rng.next() & 0xFFFF), low: rng.next())
    }

    /// An address in `victim`'s region: with a table, 64 to 4,096 routed networks
    /// away (log-uniform); else sharing a prefix of 8 to 11 bits (IPv6: 16 to 23).
    static func nearAddress(_ victim: IPAddress, networks: RoutedNetworks?, _ rng: inout SeededRandom) -> IPAddress {
        let v4 = victim.isIPv4
        if let networks, let row = networks.row(of: victim) {
            let rows = v4 ? networks.ipv4Starts.count : networks.ipv6Starts.count
            let offset = Int(exp(Double.random(in: log(64)...log(Double(regionRoutedNetworks)), using: &rng)).rounded())
            let target = min(max(row + (rng.below(2) == 0 ? -offset : offset), 0), rows - 1)
            if v4 {
                let first = networks.ipv4Starts[target], last = networks.ipv4Lasts[target]
                let span = UInt64(last &- first) + 1
                return IPAddress(ipv4: first &+ UInt32(truncatingIfNeeded: ((rng.next() >> 32) &* span) >> 32))
            }
            return RoutedNetworks.uniform(from: networks.ipv6Starts[target], to: networks.ipv6Lasts[target], using: &rng)
        }
        // Without a table the region is a shared prefix short of related (8 to 11 bits
        // of IPv4, 16 to 23 of IPv6), for the same reason: not the victim's drift.
        if let address = victim.ipv4 {
            let keep = 8 + rng.below(4)
            let mask: UInt32 = ~0 << UInt32(32 - keep)
            var ip = (address & mask) | (UInt32(truncatingIfNeeded: rng.next()) & ~mask)
            // Not its own /24: the bit after the shared prefix differs.
            ip = (ip & ~(1 << UInt32(31 - keep))) | (~address & (1 << UInt32(31 - keep)))
            return IPAddress(ipv4: ip)
        }
        let keep = 16 + rng.below(8)
        let mask: UInt64 = ~0 << UInt64(64 - keep)
        var high = (victim.high & mask) | (rng.next() & ~mask)
        high = (high & ~(1 << UInt64(63 - keep))) | (~victim.high & (1 << UInt64(63 - keep)))
        return IPAddress(high: high, low: rng.next())
    }

    static func logisticRegression(_ x: [[Double]], _ y: [Double], threads: Int = 2) -> RiskModel {
        logisticRegression(flat: x.flatMap { $0 }, y, threads: threads)
    }

    /// Newton's method on the mean log loss with a small ridge, on standardised
    /// features; `x` holds `featureNames.count` values per row.
    static func logisticRegression(flat x: [Double], _ y: [Double], threads: Int = 2) -> RiskModel {
        let k = featureNames.count, k1 = k + 1
        let rows = y.count
        precondition(x.count == rows * k)
        let n = Double(max(rows, 1))
        var means = [Double](repeating: 0, count: k), scales = [Double](repeating: 1, count: k)
        var lows = [Double](repeating: rows > 0 ? .infinity : 0, count: k), highs = [Double](repeating: rows > 0 ? -.infinity : 0, count: k)
        for i in 0..<rows {
            for j in 0..<k {
                means[j] += x[i * k + j]
                lows[j] = min(lows[j], x[i * k + j])
                highs[j] = max(highs[j], x[i * k + j])
            }
        }
        for j in 0..<k { means[j] /= n }
        var variances = [Double](repeating: 0, count: k)
        for i in 0..<rows { for j in 0..<k { let d = x[i * k + j] - means[j]; variances[j] += d * d } }
        // Features are O(1) (logs, fractions, flags): a column that barely varies in
        // the calibration data is not blown up, or an entity unlike every calibration
        // row (a newcomer, a rare family) would get an absurd share of the log odds.
        for j in 0..<k { scales[j] = variances[j] / n > 1e-12 ? max((variances[j] / n).squareRoot(), 0.1) : 1 }
        // Standardised rows with a trailing 1 for the intercept.
        var z = [Double](repeating: 1, count: rows * k1)
        for i in 0..<rows { for j in 0..<k { z[i * k1 + j] = (x[i * k + j] - means[j]) / scales[j] } }
        var w = [Double](repeating: 0, count: k1)
        let parts = max(1, min(threads, rows / 10_000))
        for _ in 0..<50 {
            // Each part sums its rows' gradient and Hessian (upper triangle).
            let stride = k1 + k1 * k1
            let partial = UnsafeMutablePointer<Double>.allocate(capacity: parts * stride)
            defer { partial.deallocate() }
            partial.initialize(repeating: 0, count: parts * stride)
            let weights = w
            z.withUnsafeBufferPointer { zb in
                let zp = zb.baseAddress!
                Parallel.chunks(rows, parts: parts) { part, lo, hi in
                    let g = partial + part * stride, h = g + k1
                    for i in lo..<hi {
                        let row = zp + i * k1
                        var s = 0.0
                        for j in 0..<k1 { s += weights[j] * row[j] }
                        let p = 1 / (1 + exp(-s))
                        let c = p * (1 - p), r = p - y[i]
                        for a in 0..<k1 {
                            g[a] += r * row[a]
                            let ca = c * row[a], ha = h + a * k1
                            for b in a..<k1 { ha[b] += ca * row[b] }
                        }
                    }
                }
            }
            var g = [Double](repeating: 0, count: k1)
            var h = [[Double]](repeating: [Double](repeating: 0, count: k1), count: k1)
            for part in 0..<parts {
                let base = partial + part * stride
                for a in 0..<k1 {
                    g[a] += base[a]
                    for b in a..<k1 { h[a][b] += base[k1 + a * k1 + b] }
                }
            }
            for a in 0..<k1 {
                g[a] = g[a] / n + 1e-4 * w[a]
                for b in a..<k1 { h[a][b] = h[a][b] / n + (a == b ? 1e-4 : 0); h[b][a] = h[a][b] }
            }
            let step = solve(h, g)
            var largest = 0.0
            for j in 0..<k1 { w[j] -= step[j]; largest = max(largest, abs(step[j])) }
            if largest < 1e-7 { break }
        }
        return RiskModel(means: means, scales: scales, weights: w, lows: lows, highs: highs)
    }

    /// Solves a small symmetric positive definite system by Gaussian elimination with pivoting.
    static func solve(_ a: [[Double]], _ b: [Double]) -> [Double] {
        let n = b.count
        var m = a, v = b
        for c in 0..<n {
            let pivot = (c..<n).max { abs(m[$0][c]) < abs(m[$1][c]) }!
            m.swapAt(c, pivot)
            v.swapAt(c, pivot)
            guard abs(m[c][c]) > 1e-300 else { continue }
            for r in (c + 1)..<n {
                let f = m[r][c] / m[c][c]
                if f == 0 { continue }
                for j in c..<n { m[r][j] -= f * m[c][j] }
                v[r] -= f * v[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = v[r]
            for j in (r + 1)..<n { s -= m[r][j] * x[j] }
            x[r] = abs(m[r][r]) > 1e-300 ? s / m[r][r] : 0
        }
        return x
    }
}
