#if canImport(Glibc)
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
    public static let featureNames = [
        "dot_product", "negative dot_product", "shared prefix with history", "activity",
        "travel rate", "same /16 (/32) as history", "same /24 (/48) as history", "unrelated network × activity",
        "unrelated network × travel rate", "IPv6", "new address family", "IPv6 × shared prefix",
        "routed networks away",
    ]
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
        /// common the network is across all users. Reported with the risk, not
        /// weighed in it (see the README: it did not help on the benchmarks).
        public var networkEntities: (narrow: Int, wide: Int)
        /// Routed networks between the address and the entity's nearest known one
        /// (with a routed-network table and a history in the family).
        public var routedDistance: Int?
        /// An unrelated network: more than `nearRoutedNetworks` routed networks
        /// away with a table, else fewer than `isolatedBelow` shared bits.
        public var unrelated: Bool
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
        for other in [entityHash, donor].compactMap({ $0 }) {
            if narrow > 0, history.uses(entityHash: other, network: ip, length: lengths.narrow) { narrow -= 1 }
            if wide > 0, history.uses(entityHash: other, network: ip, length: lengths.wide) { wide -= 1 }
        }
        let familyShared = near.map { $0.address.isIPv4 == v4 } ?? false
        let bits = familyShared ? near!.bits : 0
        let routed = history.routedDistance(entityHash: entityHash, to: ip)
        let unrelated = routed.map { $0 > EntityHistory.nearRoutedNetworks }
            ?? (bits < (v4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6))
        return Facts(dotProduct: dotProduct, sharedBits: bits, familyBits: v4 ? 32 : 64,
                     logins: profile?.count ?? 0, familyLogins: profile?.logins(family: ip) ?? 0,
                     travelRate: history.travelRate(entityHash: entityHash), nearest: familyShared ? near?.address : nil,
                     networkEntities: (narrow, wide), routedDistance: routed, unrelated: unrelated)
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
        let values: [Double] = [
            dot / 10, min(dot, 0) / 10, shared, activity, travel,
            f.sharedBits >= (v4 ? 16 : 32) ? 1 : 0, f.sharedBits >= (v4 ? 24 : 48) ? 1 : 0,
            unrelated ? activity : 0, unrelated ? travel : 0,
            // IPv6 prefixes on their own scale: a shared /32 is not a shared /16.
            v4 ? 0 : 1, f.familyLogins == 0 ? 1 : 0, v4 ? 0 : shared, routed,
        ]
        for (i, v) in values.enumerated() { out[i] = v }
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
            for _ in 0..<positives {
                let target = entities[rng.below(entities.count)]
                var donor = entities[rng.below(entities.count)]
                while donor == target { donor = entities[rng.below(entities.count)] }
                let p = history.profiles[donor]!
                hashes.append(target)
                ips.append(takeoverAddress(near: history.addresses[p.start + rng.below(p.count)], &rng))
                donors.append(donor)
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

    /// An address in a network other entities use: a history address with its host
    /// part (the last 12 bits of IPv4, 80 of IPv6) drawn at random.
    static func takeoverAddress(near base: IPAddress, _ rng: inout SeededRandom) -> IPAddress {
        if let v4 = base.ipv4 {
            return IPAddress(ipv4: (v4 & ~0xFFF) | UInt32(truncatingIfNeeded: rng.next() & 0xFFF))
        }
        return IPAddress(high: (base.high & ~0xFFFF) | (rng.next() & 0xFFFF), low: rng.next())
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
