#if canImport(Glibc)
import IPInsights
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// What has been seen of each entity: its addresses, sorted, so that the networks
/// nearest a new address are a binary search away; and what has been seen of every
/// network across all entities. The detector's memory, beside the model's embeddings.
public struct EntityHistory: Sendable {
    /// Where one entity's addresses are in `addresses`, and what they say.
    public struct Profile: Sendable {
        public var start: Int
        public var count: Int
        /// Addresses sharing fewer than `isolatedBelow` leading bits with any other
        /// address of the entity: logins from unrelated networks.
        public var isolated: Int
        /// How many of the addresses are IPv4 (they sort before every IPv6 address
        /// but the few below `::ffff:0:0`, so they are counted, not located).
        public var ipv4: Int

        /// The entity's logins over the family of `ip`.
        public func logins(family ip: IPAddress) -> Int { ip.isIPv4 ? ipv4 : count - ipv4 }
    }

    /// The population's travel rate as a Beta(alpha, beta) prior: each entity's
    /// estimate is its posterior mean. Fitted by maximum likelihood on all entities'
    /// (isolated, logins) counts (a beta-binomial), so that how much a quiet entity's
    /// few logins say is learnt from how much travel rates vary between entities.
    public private(set) var travelPrior = (alpha: 1.0, beta: 19.0)

    /// The prior's strength when there are too few entities to fit it, in logins.
    public static let defaultPriorLogins = 20.0

    /// The share of all entities' logins that came from unrelated networks.
    public private(set) var pooledTravelRate = 0.05

    /// An estimate of how often the entity logs in from unrelated networks: the
    /// posterior mean of its rate under `travelPrior` (empirical Bayes), so that a
    /// quiet entity's few logins do not make it look like it never travels.
    public func travelRate(entityHash: UInt64) -> Double {
        let (a, b) = travelPrior
        guard let p = profiles[entityHash] else { return a / (a + b) }
        return (Double(p.isolated) + a) / (Double(p.count) + a + b)
    }

    /// Addresses sharing fewer leading bits than this with the rest of a history
    /// count as travel (IPv4: not even the same /12; IPv6: the same /24).
    public static let isolatedBelow = (ipv4: 12, ipv6: 24)

    /// The network lengths at which the population is counted: narrow (/24, /48)
    /// and wide (/16, /32).
    public static let networkLengths = (ipv4: (narrow: 24, wide: 16), ipv6: (narrow: 48, wide: 32))

    public private(set) var addresses: [IPAddress] = []
    public private(set) var profiles: [UInt64: Profile] = [:]
    public private(set) var totalPairs = 0
    /// Every narrow network some entity used, sorted (see `networkKey`), with the
    /// number of distinct entities that used it; the same for wide networks.
    public private(set) var narrowNetworks: [UInt64] = []
    public private(set) var narrowEntities: [Int32] = []
    public private(set) var wideNetworks: [UInt64] = []
    public private(set) var wideEntities: [Int32] = []
    /// With a routed-network table: every AS some entity logged in from, sorted,
    /// with the number of distinct entities (keys are the AS number, IPv6 above 2^32).
    public private(set) var asNetworks: [UInt64] = []
    public private(set) var asEntities: [Int32] = []
    /// The routed-network table, when one is given: then "unrelated" means more than
    /// `nearRoutedNetworks` routed networks away rather than fewer shared bits.
    public private(set) var networks: RoutedNetworks?

    /// Within this many routed networks of a known address a login is near the
    /// entity's networks (a neighbouring allocation of the same region or provider).
    public static let nearRoutedNetworks = 64

    public init() {}

    /// Builds the history of every entity in `pairs`; `networks` is the optional
    /// routed-network table.
    public init(_ pairs: TrainingPairs, networks: RoutedNetworks? = nil) {
        self.networks = networks
        totalPairs = pairs.count
        let order = (0..<pairs.count).sorted {
            let a = pairs.entityHashes[$0], b = pairs.entityHashes[$1]
            return a != b ? a < b : pairs.ips[$0] < pairs.ips[$1]
        }
        addresses.reserveCapacity(pairs.count)
        var totalIsolated = 0
        var narrowKeys: [UInt64] = [], wideKeys: [UInt64] = [], asKeys: [UInt64] = []
        var counts: [(isolated: Int, logins: Int)] = []
        var k = 0
        while k < order.count {
            let hash = pairs.entityHashes[order[k]]
            let start = addresses.count
            while k < order.count, pairs.entityHashes[order[k]] == hash {
                addresses.append(pairs.ips[order[k]])
                k += 1
            }
            let count = addresses.count - start
            var isolated = 0, ipv4 = 0
            var lastNarrow: UInt64? = nil, lastWide: UInt64? = nil
            var seenAS = Set<UInt64>()
            for i in start..<(start + count) {
                let ip = addresses[i]
                if ip.isIPv4 { ipv4 += 1 }
                var related = false
                if i > start { related = self.related(ip, addresses[i - 1]) }
                if !related, i + 1 < start + count { related = self.related(ip, addresses[i + 1]) }
                if !related { isolated += 1 }
                // Sorted addresses: an entity's networks come in runs, one key each.
                let narrow = EntityHistory.networkKey(ip, wide: false), wide = EntityHistory.networkKey(ip, wide: true)
                // One AS lookup per network run, not per login.
                if narrow != lastNarrow, let key = asKey(ip), seenAS.insert(key).inserted { asKeys.append(key) }
                if narrow != lastNarrow { narrowKeys.append(narrow); lastNarrow = narrow }
                if wide != lastWide { wideKeys.append(wide); lastWide = wide }
            }
            profiles[hash] = Profile(start: start, count: count, isolated: isolated, ipv4: ipv4)
            counts.append((isolated, count))
            totalIsolated += isolated
        }
        (narrowNetworks, narrowEntities) = EntityHistory.tally(&narrowKeys)
        (wideNetworks, wideEntities) = EntityHistory.tally(&wideKeys)
        (asNetworks, asEntities) = EntityHistory.tally(&asKeys)
        if totalPairs > 0 { pooledTravelRate = max(Double(totalIsolated) / Double(totalPairs), 1e-4) }
        travelPrior = EntityHistory.fitTravelPrior(counts, pooled: pooledTravelRate)
    }

    /// Sorts keys (one per entity and network) and counts the entities of each network.
    static func tally(_ keys: inout [UInt64]) -> ([UInt64], [Int32]) {
        keys.sort()
        var networks: [UInt64] = [], entities: [Int32] = []
        for key in keys {
            if networks.last == key { entities[entities.count - 1] += 1 } else { networks.append(key); entities.append(1) }
        }
        return (networks, entities)
    }

    /// A network as one sortable number: IPv4 networks are above bit 62, IPv6
    /// networks (at most 48 bits) below it, so keys of one family sort together
    /// and in address order.
    @inline(__always)
    public static func networkKey(_ ip: IPAddress, wide: Bool) -> UInt64 {
        if ip.isIPv4 {
            let length = wide ? networkLengths.ipv4.wide : networkLengths.ipv4.narrow
            return 1 << 62 | UInt64(UInt32(truncatingIfNeeded: ip.low) >> UInt32(32 - length))
        }
        let length = wide ? networkLengths.ipv6.wide : networkLengths.ipv6.narrow
        return ip.high >> UInt64(64 - length)
    }

    /// Fits the Beta prior of the travel rate by maximum likelihood of the
    /// beta-binomial: (isolated, logins) per entity. The search runs over the
    /// prior's mean and its strength (alpha + beta, in logins), both in log space.
    static func fitTravelPrior(_ counts: [(isolated: Int, logins: Int)], pooled: Double) -> (alpha: Double, beta: Double) {
        let fallback = (alpha: pooled * defaultPriorLogins, beta: (1 - pooled) * defaultPriorLogins)
        // Too few entities say nothing about how rates vary between them.
        guard counts.count >= 50, counts.contains(where: { $0.isolated > 0 }) else { return fallback }
        func logLikelihood(_ mean: Double, _ strength: Double) -> Double {
            let a = mean * strength, b = (1 - mean) * strength
            let base = lgamma(a + b) - lgamma(a) - lgamma(b)
            var sum = 0.0
            for c in counts {
                sum += base + lgamma(Double(c.isolated) + a) + lgamma(Double(c.logins - c.isolated) + b)
                    - lgamma(Double(c.logins) + a + b)
            }
            return sum
        }
        // Coordinate search with shrinking steps, from the pooled rate and the default strength.
        var m = log(min(max(pooled, 1e-4), 0.5)), s = log(defaultPriorLogins)
        var best = logLikelihood(exp(m), exp(s))
        var step = 1.0
        while step > 1e-3 {
            var moved = false
            for (dm, ds) in [(step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)] {
                let cm = min(m + dm, log(0.5)), cs = min(max(s + ds, 0), log(10_000))
                let v = logLikelihood(exp(cm), exp(cs))
                if v > best { best = v; m = cm; s = cs; moved = true; break }
            }
            if !moved { step /= 2 }
        }
        return (exp(m) * exp(s), (1 - exp(m)) * exp(s))
    }

    public var entityCount: Int { profiles.count }

    /// Whether two addresses are in related networks: within `nearRoutedNetworks`
    /// routed networks with a table, else sharing at least `isolatedBelow` bits.
    /// Addresses are sorted, so an address's nearest is one of its neighbours.
    @inline(__always)
    func related(_ a: IPAddress, _ b: IPAddress) -> Bool {
        if let networks, let d = networks.distance(a, b) { return d <= EntityHistory.nearRoutedNetworks }
        return EntityHistory.sharedBits(a, b) >= (a.isIPv4 ? EntityHistory.isolatedBelow.ipv4 : EntityHistory.isolatedBelow.ipv6)
    }

    /// How many routed networks lie between `ip` and the nearest of the entity's
    /// addresses of its family; nil without a table or such addresses. Row order is
    /// address order, so the nearest is next to the insertion point.
    public func routedDistance(entityHash: UInt64, to ip: IPAddress) -> Int? {
        routedNearest(entityHash: entityHash, to: ip)?.distance
    }

    /// The entity's address fewest routed networks from `ip`, with that count: the
    /// network the distance is measured to, so its AS can be reported beside it.
    public func routedNearest(entityHash: UInt64, to ip: IPAddress) -> (address: IPAddress, distance: Int)? {
        guard let networks, let p = profiles[entityHash], p.count > 0 else { return nil }
        let lo = lowerBound(p, ip)
        var best: (address: IPAddress, distance: Int)? = nil
        for i in [lo - 1, lo] where i >= p.start && i < p.start + p.count {
            if let d = networks.distance(addresses[i], ip), best == nil || d < best!.distance { best = (addresses[i], d) }
        }
        return best
    }

    /// Leading bits two addresses share within their family (0 across families).
    @inline(__always)
    public static func sharedBits(_ a: IPAddress, _ b: IPAddress) -> Int {
        guard a.isIPv4 == b.isIPv4 else { return 0 }
        if a.isIPv4 { return (UInt32(truncatingIfNeeded: a.low) ^ UInt32(truncatingIfNeeded: b.low)).leadingZeroBitCount }
        let high = a.high ^ b.high
        return high != 0 ? high.leadingZeroBitCount : 64 + (a.low ^ b.low).leadingZeroBitCount
    }

    /// The first index in the entity's addresses not below `ip`.
    @inline(__always)
    func lowerBound(_ p: Profile, _ ip: IPAddress) -> Int {
        var lo = p.start, hi = p.start + p.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if addresses[mid] < ip { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The history address nearest `ip` (longest shared prefix) and the bits they share.
    public func nearest(entityHash: UInt64, to ip: IPAddress) -> (address: IPAddress, bits: Int)? {
        guard let p = profiles[entityHash], p.count > 0 else { return nil }
        // The best match is next to the insertion point.
        let lo = lowerBound(p, ip)
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
        var k = lowerBound(p, network), n = 0
        while k < p.start + p.count, addresses[k].masked(to: length) == network { n += 1; k += 1 }
        return n
    }

    /// Whether the entity has a login in the network of `ip` at `length` bits.
    public func uses(entityHash: UInt64, network ip: IPAddress, length: Int) -> Bool {
        guard let p = profiles[entityHash] else { return false }
        let network = ip.masked(to: length)
        let k = lowerBound(p, network)
        return k < p.start + p.count && addresses[k].masked(to: length) == network
    }

    /// The first index of `keys` not below `key`.
    @inline(__always)
    static func lowerBound(_ keys: UnsafeBufferPointer<UInt64>, _ key: UInt64) -> Int {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid] < key { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The AS of `ip` as a tally key (IPv6 above 2^32); nil without a table.
    func asKey(_ ip: IPAddress) -> UInt64? {
        guard let a = networks?.asn(of: ip) else { return nil }
        return UInt64(a) | (ip.isIPv4 ? 0 : 1 << 32)
    }

    /// How many distinct entities logged in from the AS of `ip` (with a table; 0 without).
    public func entities(inASOf ip: IPAddress) -> Int {
        guard let key = asKey(ip) else { return 0 }
        return asNetworks.withUnsafeBufferPointer { k in
            let i = EntityHistory.lowerBound(k, key)
            return i < k.count && k[i] == key ? Int(asEntities[i]) : 0
        }
    }

    /// Whether the entity has a login in the AS of `ip`.
    public func usesAS(entityHash: UInt64, of ip: IPAddress) -> Bool {
        guard let networks, let p = profiles[entityHash], let a = networks.asn(of: ip) else { return false }
        for i in p.start..<(p.start + p.count) where addresses[i].isIPv4 == ip.isIPv4 && networks.asn(of: addresses[i]) == a {
            return true
        }
        return false
    }

    /// The widths (in routed networks with a table, else in /24 or /48 blocks) over
    /// which `density` counts the entity's logins around an address.
    public static let densityWidths = [0, 8, 64]

    /// The shares of the entity's logins (of the address's family) within each of
    /// `densityWidths` networks of `ip`: how dense its own logins are around the
    /// address, which tells a neighbour of its home (its logins spread there) from
    /// a network beside a home it never leaves. Binary searches, not a scan: the
    /// addresses are sorted, and so are the networks they fall in.
    public func density(entityHash: UInt64, ip: IPAddress) -> [Double] {
        guard let p = profiles[entityHash] else { return EntityHistory.densityWidths.map { _ in 0 } }
        let family = Double(max(p.logins(family: ip), 1))
        return EntityHistory.densityWidths.map { width in
            guard let (low, high) = span(around: ip, width: width) else { return 0 }
            let n = lowerBound(p, high) - lowerBound(p, low)
            return Double(n) / family
        }
    }

    /// The addresses [low, high) of the networks within `width` of the one holding `ip`.
    func span(around ip: IPAddress, width: Int) -> (IPAddress, IPAddress)? {
        // Just past the last IPv4 address (IPv4 lives in ::ffff:0:0/96), and the IPv6 end.
        let pastIPv4 = IPAddress(high: 1, low: 0), lastIPv6 = IPAddress(high: .max, low: .max)
        if let networks, let row = networks.row(of: ip) {
            if ip.isIPv4 {
                let starts = networks.ipv4Starts
                let high = row + width + 1 < starts.count ? IPAddress(ipv4: starts[row + width + 1]) : pastIPv4
                return (IPAddress(ipv4: starts[max(0, row - width)]), high)
            }
            let starts = networks.ipv6Starts
            let high = row + width + 1 < starts.count ? starts[row + width + 1] : lastIPv6
            return (starts[max(0, row - width)], high)
        }
        if let v4 = ip.ipv4 {
            let block = Int64(v4 >> 8)
            let top = block + Int64(width) + 1
            let high = top >= 1 << 24 ? pastIPv4 : IPAddress(ipv4: UInt32(top << 8))
            return (IPAddress(ipv4: UInt32(max(0, block - Int64(width)) << 8)), high)
        }
        let block = ip.high >> 16
        let low = block >= UInt64(width) ? (block - UInt64(width)) << 16 : 0
        let top = block + UInt64(width) + 1
        let high = top >= 1 << 48 ? lastIPv6 : IPAddress(high: top << 16, low: 0)
        return (IPAddress(high: low, low: 0), high)
    }

    /// Adds one login of an entity (an analyst confirmed it) without rebuilding:
    /// the entity's addresses move to the end of the array with the new one in
    /// order (the old slots are left until the next rebuild), and the network
    /// tallies count the entity in a network it had not used.
    public mutating func add(entityHash: UInt64, ip: IPAddress) {
        let old = profiles[entityHash]
        let narrowNew = !(old.map { _ in uses(entityHash: entityHash, network: ip, length: ip.isIPv4 ? EntityHistory.networkLengths.ipv4.narrow : EntityHistory.networkLengths.ipv6.narrow) } ?? false)
        let wideNew = !(old.map { _ in uses(entityHash: entityHash, network: ip, length: ip.isIPv4 ? EntityHistory.networkLengths.ipv4.wide : EntityHistory.networkLengths.ipv6.wide) } ?? false)
        let asNew = !usesAS(entityHash: entityHash, of: ip)
        var mine = old.map { Array(addresses[$0.start..<($0.start + $0.count)]) } ?? []
        let at = mine.firstIndex { ip < $0 } ?? mine.count
        let related = (at > 0 && self.related(ip, mine[at - 1])) || (at < mine.count && self.related(ip, mine[at]))
        mine.insert(ip, at: at)
        let start = addresses.count
        addresses += mine
        profiles[entityHash] = Profile(start: start, count: mine.count, isolated: (old?.isolated ?? 0) + (related ? 0 : 1),
                                       ipv4: (old?.ipv4 ?? 0) + (ip.isIPv4 ? 1 : 0))
        totalPairs += 1
        if narrowNew { EntityHistory.count(EntityHistory.networkKey(ip, wide: false), in: &narrowNetworks, &narrowEntities) }
        if wideNew { EntityHistory.count(EntityHistory.networkKey(ip, wide: true), in: &wideNetworks, &wideEntities) }
        if asNew, let key = asKey(ip) { EntityHistory.count(key, in: &asNetworks, &asEntities) }
    }

    /// One more entity in the tally of `key`.
    static func count(_ key: UInt64, in keys: inout [UInt64], _ entities: inout [Int32]) {
        let i = keys.withUnsafeBufferPointer { lowerBound($0, key) }
        if i < keys.count && keys[i] == key {
            entities[i] += 1
        } else {
            keys.insert(key, at: i)
            entities.insert(1, at: i)
        }
    }

    /// How many distinct entities logged in from the network of `ip` (narrow: /24
    /// or /48; wide: /16 or /32): how common the network is across all users.
    public func entities(inNetworkOf ip: IPAddress, wide: Bool) -> Int {
        let key = EntityHistory.networkKey(ip, wide: wide)
        let keys = wide ? wideNetworks : narrowNetworks
        return keys.withUnsafeBufferPointer { k in
            let i = EntityHistory.lowerBound(k, key)
            return i < k.count && k[i] == key ? Int((wide ? wideEntities : narrowEntities)[i]) : 0
        }
    }
}
