/// A routed-network table (the kind BGP-derived ASN tables such as pyasn's are):
/// address ranges in address order, one row per routed network, with its AS number.
/// It turns "how far is this address from the entity's networks" into a count of
/// routed networks between them, which follows how address space is handed out:
/// ten networks away can be a neighbouring /24 or a different /8.
public struct RoutedNetworks: Sendable, Equatable {
    /// Each family's rows by first address, ascending; ASNs alongside.
    public private(set) var ipv4Starts: [UInt32] = []
    public private(set) var ipv4ASNs: [UInt32] = []
    public private(set) var ipv6Starts: [IPAddress] = []
    public private(set) var ipv6ASNs: [UInt32] = []

    public init() {}

    /// Builds the table from (first address, AS number) rows in any order; the
    /// last address of a row is implied by the next row's first.
    public init(rows: [(first: IPAddress, asn: UInt32)]) {
        for row in rows.sorted(by: { $0.first < $1.first }) {
            if let v4 = row.first.ipv4 {
                ipv4Starts.append(v4)
                ipv4ASNs.append(row.asn)
            } else {
                ipv6Starts.append(row.first)
                ipv6ASNs.append(row.asn)
            }
        }
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
}
