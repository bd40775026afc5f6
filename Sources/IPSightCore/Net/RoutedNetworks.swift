/// A routed-network table (the kind BGP-derived ASN tables such as pyasn's are):
/// address ranges in address order, one row per routed network, with its AS number.
/// It turns "how far is this address from the entity's networks" into a count of
/// routed networks between them, which follows how address space is handed out:
/// ten networks away can be a neighbouring /24 or a different /8. It also gives
/// training random addresses that look like the internet's (`randomAddress`).
public struct RoutedNetworks: Sendable, Equatable {
    /// Each family's rows by first address, ascending; last addresses and ASNs alongside.
    public private(set) var ipv4Starts: [UInt32] = []
    public private(set) var ipv4Lasts: [UInt32] = []
    public private(set) var ipv4ASNs: [UInt32] = []
    public private(set) var ipv6Starts: [IPAddress] = []
    public private(set) var ipv6Lasts: [IPAddress] = []
    public private(set) var ipv6ASNs: [UInt32] = []

    public init() {}

    /// Builds the table from (first address, last address, AS number) rows in any order.
    public init(ranges: [(first: IPAddress, last: IPAddress, asn: UInt32)]) {
        for row in ranges.sorted(by: { $0.first < $1.first }) {
            if let v4 = row.first.ipv4, let last = row.last.ipv4 {
                ipv4Starts.append(v4)
                ipv4Lasts.append(max(last, v4))
                ipv4ASNs.append(row.asn)
            } else if !row.first.isIPv4 && !row.last.isIPv4 {
                ipv6Starts.append(row.first)
                ipv6Lasts.append(max(row.last, row.first))
                ipv6ASNs.append(row.asn)
            }
        }
    }

    /// Builds the table from (first address, AS number) rows in any order; each
    /// row ends where the next row of its family begins.
    public init(rows: [(first: IPAddress, asn: UInt32)]) {
        let sorted = rows.sorted(by: { $0.first < $1.first })
        var ranges: [(first: IPAddress, last: IPAddress, asn: UInt32)] = []
        for (k, row) in sorted.enumerated() {
            var last = row.first.isIPv4 ? IPAddress(ipv4: .max) : IPAddress(high: .max, low: .max)
            if k + 1 < sorted.count, sorted[k + 1].first.isIPv4 == row.first.isIPv4, sorted[k + 1].first > row.first {
                last = sorted[k + 1].first.predecessor
            }
            ranges.append((row.first, last, row.asn))
        }
        self.init(ranges: ranges)
    }

    public var count: Int { ipv4Starts.count + ipv6Starts.count }

    /// The row holding `ip`: the last row starting at or below it (the first row
    /// for an address below every row), within the address's family; nil when the
    /// table has no row of that family.
    public func row(of ip: IPAddress) -> Int? {
        if let v4 = ip.ipv4 { return RoutedNetworks.lastAtOrBelow(ipv4Starts, v4) }
        return RoutedNetworks.lastAtOrBelow(ipv6Starts, ip)
    }

    /// The AS number of the network holding `ip`.
    public func asn(of ip: IPAddress) -> UInt32? {
        guard let r = row(of: ip) else { return nil }
        return ip.isIPv4 ? ipv4ASNs[r] : ipv6ASNs[r]
    }

    /// How many routed networks lie between two addresses' networks (0: the same
    /// network); nil across families or without rows of the family.
    public func distance(_ a: IPAddress, _ b: IPAddress) -> Int? {
        guard a.isIPv4 == b.isIPv4, let ra = row(of: a), let rb = row(of: b) else { return nil }
        return abs(ra - rb)
    }

    @inline(__always)
    static func lastAtOrBelow<T: Comparable>(_ starts: [T], _ key: T) -> Int? {
        guard !starts.isEmpty else { return nil }
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= key { lo = mid + 1 } else { hi = mid }
        }
        return max(lo - 1, 0)
    }

    // MARK: Random addresses

    /// An address from a routed network of the given family: a row chosen
    /// uniformly, then an address uniformly inside it (how the IP Insights
    /// tutorial draws its attack addresses). Nil when the table has no row of the family.
    @inline(__always)
    public func randomAddress(ipv4: Bool, using rng: inout SeededRandom) -> IPAddress? {
        if ipv4 {
            guard !ipv4Starts.isEmpty else { return nil }
            let r = rng.below(ipv4Starts.count)
            let span = UInt64(ipv4Lasts[r] &- ipv4Starts[r]) + 1     // 1 ... 2^32
            return IPAddress(ipv4: ipv4Starts[r] &+ UInt32(truncatingIfNeeded: ((rng.next() >> 32) &* span) >> 32))
        }
        guard !ipv6Starts.isEmpty else { return nil }
        let r = rng.below(ipv6Starts.count)
        return RoutedNetworks.uniform(from: ipv6Starts[r], to: ipv6Lasts[r], using: &rng)
    }

    /// Uniform in [first, last] over 128 bits: an offset of the span's bit length,
    /// drawn again while it exceeds the span (fewer than two draws on average).
    public static func uniform(from first: IPAddress, to last: IPAddress, using rng: inout SeededRandom) -> IPAddress {
        let (spanLow, borrow) = last.low.subtractingReportingOverflow(first.low)
        let spanHigh = last.high &- first.high &- (borrow ? 1 : 0)
        let highMask: UInt64 = spanHigh == 0 ? 0 : ~UInt64(0) >> UInt64(spanHigh.leadingZeroBitCount)
        let lowMask: UInt64 = spanHigh != 0 ? ~0 : spanLow == 0 ? 0 : ~UInt64(0) >> UInt64(spanLow.leadingZeroBitCount)
        while true {
            let offHigh = rng.next() & highMask, offLow = rng.next() & lowMask
            guard offHigh < spanHigh || (offHigh == spanHigh && offLow <= spanLow) else { continue }
            let (low, carry) = first.low.addingReportingOverflow(offLow)
            return IPAddress(high: first.high &+ offHigh &+ (carry ? 1 : 0), low: low)
        }
    }
}
