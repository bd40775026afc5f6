/// What has been seen of each entity: its addresses, sorted, so that the networks
/// nearest a new address are a binary search away. The detector's memory, beside
/// the model's embeddings.
public struct EntityHistory: Sendable {
    /// Where one entity's addresses are in `addresses`, and what they say.
    public struct Profile: Sendable {
        public var start: Int
        public var count: Int
        /// Addresses sharing fewer than `isolatedBelow` leading bits with any other
        /// address of the entity: logins from unrelated networks.
        public var isolated: Int
    }

    /// How many logins the pooled travel rate is worth in each entity's estimate.
    public static let priorLogins = 20.0

    /// The share of all entities' logins that came from unrelated networks.
    public private(set) var pooledTravelRate = 0.05

    /// An estimate of how often the entity logs in from unrelated networks: its own
    /// share, shrunk towards the pooled share by `priorLogins` (empirical Bayes), so
    /// that a quiet entity's few logins do not make it look like it never travels.
    public func travelRate(entityHash: UInt64) -> Double {
        guard let p = profiles[entityHash] else { return pooledTravelRate }
        return (Double(p.isolated) + EntityHistory.priorLogins * pooledTravelRate) / (Double(p.count) + EntityHistory.priorLogins)
    }

    /// Addresses sharing fewer leading bits than this with the rest of a history
    /// count as travel (IPv4: not even the same /12; IPv6: the same /24).
    public static let isolatedBelow = (ipv4: 12, ipv6: 24)

    public private(set) var addresses: [IPAddress] = []
    public private(set) var profiles: [UInt64: Profile] = [:]
    public private(set) var totalPairs = 0

    public init() {}

    /// Builds the history of every entity in `pairs`.
    public init(_ pairs: TrainingPairs) {
        totalPairs = pairs.count
        let order = (0..<pairs.count).sorted {
            let a = pairs.entityHashes[$0], b = pairs.entityHashes[$1]
            return a != b ? a < b : pairs.ips[$0] < pairs.ips[$1]
        }
        addresses.reserveCapacity(pairs.count)
        var totalIsolated = 0
        var k = 0
        while k < order.count {
            let hash = pairs.entityHashes[order[k]]
            let start = addresses.count
            while k < order.count, pairs.entityHashes[order[k]] == hash {
                addresses.append(pairs.ips[order[k]])
                k += 1
            }
            let count = addresses.count - start
            var isolated = 0
            for i in start..<(start + count) {
                var best = 0
                if i > start { best = max(best, EntityHistory.sharedBits(addresses[i], addresses[i - 1])) }
                if i + 1 < start + count { best = max(best, EntityHistory.sharedBits(addresses[i], addresses[i + 1])) }
                let limit = addresses[i].isIPv4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6
                if best < limit { isolated += 1 }
            }
            profiles[hash] = Profile(start: start, count: count, isolated: isolated)
            totalIsolated += isolated
        }
        if totalPairs > 0 { pooledTravelRate = max(Double(totalIsolated) / Double(totalPairs), 1e-4) }
    }

    public var entityCount: Int { profiles.count }

    /// Leading bits two addresses share within their family (0 across families).
    @inline(__always)
    public static func sharedBits(_ a: IPAddress, _ b: IPAddress) -> Int {
        guard a.isIPv4 == b.isIPv4 else { return 0 }
        if a.isIPv4 { return (UInt32(truncatingIfNeeded: a.low) ^ UInt32(truncatingIfNeeded: b.low)).leadingZeroBitCount }
        let high = a.high ^ b.high
        return high != 0 ? high.leadingZeroBitCount : 64 + (a.low ^ b.low).leadingZeroBitCount
    }

    /// The history address nearest `ip` (longest shared prefix) and the bits they share.
    public func nearest(entityHash: UInt64, to ip: IPAddress) -> (address: IPAddress, bits: Int)? {
        guard let p = profiles[entityHash], p.count > 0 else { return nil }
        // Binary search for the insertion point; the best match is next to it.
        var lo = p.start, hi = p.start + p.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if addresses[mid] < ip { lo = mid + 1 } else { hi = mid }
        }
        var best: (IPAddress, Int)? = nil
        for i in [lo - 1, lo] where i >= p.start && i < p.start + p.count {
            let bits = EntityHistory.sharedBits(addresses[i], ip)
            if best == nil || bits > best!.1 { best = (addresses[i], bits) }
        }
        return best
    }

    /// How many of the entity's logins lie in the network of `ip` at `length` bits.
    public func count(entityHash: UInt64, in ip: IPAddress, length: Int) -> Int {
        guard let p = profiles[entityHash] else { return 0 }
        let network = ip.masked(to: length)
        var n = 0
        for i in p.start..<(p.start + p.count) where addresses[i].masked(to: length) == network { n += 1 }
        return n
    }
}
