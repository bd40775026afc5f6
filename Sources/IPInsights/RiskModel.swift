#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A calibrated risk for a login: the probability that (entity, address) is an
/// account takeover rather than the entity's own login, at even prior odds.
///
/// `dot_product` says how well the address fits the entity's learnt networks, but
/// it cannot tell a business trip from an attack: both come from unrelated
/// networks, and IP Insights' score, log P(ip | entity) / P_neg(ip), is the same
/// for a busy and a rarely seen account. Attackers pick accounts regardless of how
/// active they are, and some people never travel; so the risk also weighs how
/// active the entity is, how often it logs in from unrelated networks, and how
/// close the address is to its history. The weights come from logistic regression
/// on held-out normal logins against synthetic takeovers (a uniformly chosen known
/// entity with an address near some other entity's network).
public struct RiskModel: Sendable, Equatable {
    public static let featureNames = [
        "dot_product", "negative dot_product", "shared prefix with history", "activity",
        "travel rate", "same /16 (/32) as history", "same /24 (/48) as history", "unrelated network × activity",
        "unrelated network × travel rate",
    ]
    public var means: [Double]
    public var scales: [Double]
    /// One weight per feature, then the intercept.
    public var weights: [Double]

    /// What the risk is made of for one login.
    public struct Facts: Sendable {
        public var dotProduct: Float
        public var sharedBits: Int
        public var familyBits: Int
        public var logins: Int
        public var travelRate: Double
        public var nearest: IPAddress?
    }

    public static func facts(dotProduct: Float, history: EntityHistory, entityHash: UInt64, ip: IPAddress) -> Facts {
        let profile = history.profiles[entityHash]
        let near = history.nearest(entityHash: entityHash, to: ip)
        return Facts(dotProduct: dotProduct, sharedBits: near?.bits ?? 0, familyBits: ip.isIPv4 ? 32 : 64,
                     logins: profile?.count ?? 0, travelRate: history.travelRate(entityHash: entityHash), nearest: near?.address)
    }

    /// The features of a login, before standardisation.
    public static func features(_ f: Facts, history: EntityHistory) -> [Double] {
        let dot = Double(f.dotProduct)
        let v4 = f.familyBits == 32
        let isolatedBelow = v4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6
        // Below `isolatedBelow` bits the network is unrelated whatever the count:
        // travel and takeovers share prefixes only by chance, so the count is noise.
        let shared = min(Double(max(f.sharedBits, isolatedBelow)) / Double(f.familyBits), 1)
        let entities = Double(max(history.entityCount, 1)), total = Double(max(history.totalPairs, 1))
        let activity = log((Double(f.logins) + 0.5) * entities / total)
        let unrelated = f.sharedBits < isolatedBelow
        return [
            dot / 10, min(dot, 0) / 10, shared, activity, log(f.travelRate),
            f.sharedBits >= (v4 ? 16 : 32) ? 1 : 0, f.sharedBits >= (v4 ? 24 : 48) ? 1 : 0,
            unrelated ? activity : 0,
            unrelated ? log(f.travelRate) : 0,
        ]
    }

    /// Log odds of takeover against the entity's own login.
    public func logOdds(_ features: [Double]) -> Double {
        var z = weights[features.count]
        for i in features.indices { z += weights[i] * (features[i] - means[i]) / scales[i] }
        return z
    }

    public func risk(_ features: [Double]) -> Double { 1 / (1 + exp(-logOdds(features))) }

    /// Each feature's share of the log odds (weight × standardised value), for explanations.
    public func contributions(_ features: [Double]) -> [(name: String, logOdds: Double)] {
        features.indices.map { (RiskModel.featureNames[$0], weights[$0] * (features[$0] - means[$0]) / scales[$0]) }
    }

    /// Fits the weights: `normal` are logins the history and the model have not seen
    /// (a held-out slice), the takeovers are made up from the history.
    public static func fit(model: Model, history: EntityHistory, normal: TrainingPairs, seed: UInt64 = 7,
                           threads: Int = 2) -> RiskModel {
        var rng = SeededRandom(seed: seed)
        let entities = Array(history.profiles.keys).sorted()
        var hashes: [UInt64] = [], ips: [IPAddress] = []
        for i in 0..<normal.count where history.profiles[normal.entityHashes[i]] != nil {
            hashes.append(normal.entityHashes[i])
            ips.append(normal.ips[i])
        }
        let positives = hashes.count
        for _ in 0..<positives where !entities.isEmpty && !history.addresses.isEmpty {
            hashes.append(entities[rng.below(entities.count)])
            ips.append(takeoverAddress(near: history.addresses[rng.below(history.addresses.count)], &rng))
        }
        let rows = hashes.map { Int32($0 % UInt64(model.hyperparameters.numEntityVectors)) }
        let dots = BatchScorer(model: model, threads: threads).score(entityRows: rows, ips: ips)
        let x = hashes.indices.map { features(facts(dotProduct: dots[$0], history: history, entityHash: hashes[$0], ip: ips[$0]), history: history) }
        let y = hashes.indices.map { $0 >= positives ? 1.0 : 0.0 }
        return logisticRegression(x, y)
    }

    /// An address in a network other entities use: a history address with its host
    /// part (the last 12 bits of IPv4, 80 of IPv6) drawn at random.
    static func takeoverAddress(near base: IPAddress, _ rng: inout SeededRandom) -> IPAddress {
        if let v4 = base.ipv4 {
            return IPAddress(ipv4: (v4 & ~0xFFF) | UInt32(truncatingIfNeeded: rng.next() & 0xFFF))
        }
        return IPAddress(high: (base.high & ~0xFFFF) | (rng.next() & 0xFFFF), low: rng.next())
    }

    /// Newton's method on the mean log loss with a small ridge, standardised features.
    static func logisticRegression(_ x: [[Double]], _ y: [Double]) -> RiskModel {
        let k = featureNames.count
        let n = Double(max(x.count, 1))
        var means = [Double](repeating: 0, count: k), scales = [Double](repeating: 1, count: k)
        for j in 0..<k {
            let m = x.reduce(0) { $0 + $1[j] } / n
            let v = x.reduce(0) { $0 + ($1[j] - m) * ($1[j] - m) } / n
            means[j] = m
            scales[j] = v > 1e-12 ? v.squareRoot() : 1
        }
        let z = x.map { row in (0..<k).map { (row[$0] - means[$0]) / scales[$0] } + [1] }
        var w = [Double](repeating: 0, count: k + 1)
        for _ in 0..<50 {
            var g = [Double](repeating: 0, count: k + 1)
            var h = [[Double]](repeating: [Double](repeating: 0, count: k + 1), count: k + 1)
            for (row, label) in zip(z, y) {
                var s = 0.0
                for j in 0...k { s += w[j] * row[j] }
                let p = 1 / (1 + exp(-s))
                let c = p * (1 - p)
                for a in 0...k {
                    g[a] += (p - label) * row[a]
                    for b in a...k { h[a][b] += c * row[a] * row[b] }
                }
            }
            for a in 0...k {
                g[a] = g[a] / n + 1e-4 * w[a]
                for b in a...k { h[a][b] = h[a][b] / n + (a == b ? 1e-4 : 0); h[b][a] = h[a][b] }
            }
            let step = solve(h, g)
            var largest = 0.0
            for j in 0...k { w[j] -= step[j]; largest = max(largest, abs(step[j])) }
            if largest < 1e-8 { break }
        }
        return RiskModel(means: means, scales: scales, weights: w)
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
