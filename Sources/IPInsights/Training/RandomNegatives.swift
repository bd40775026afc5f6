import IPSightCore

/// Where the addresses of random negatives come from.
public enum RandomNegatives: Sendable, Equatable {
    /// Any address of the positive's family, uniformly: the specification's random negatives.
    case uniform
    /// A routed network of the positive's family chosen uniformly from a table, then
    /// an address inside it (uniform for a family the table lacks). The scores then
    /// compare an entity's logins with the internet's networks rather than with the
    /// whole address space, much of which never logs in anywhere.
    case routed(RoutedNetworks)

    /// The routed table, if the negatives come from one.
    public var table: RoutedNetworks? {
        if case .routed(let table) = self { return table }
        return nil
    }

    /// A random address of the same family as `ip`: one from a network of `routed`
    /// (a batch reads `table` once, not once per draw), or uniformly any IPv4
    /// address or any IPv6 global unicast address (2000::/3).
    @inline(__always)
    static func address(like ip: IPAddress, from routed: RoutedNetworks?, using rng: inout SeededRandom) -> IPAddress {
        if let address = routed?.randomAddress(ipv4: ip.isIPv4, using: &rng) { return address }
        if ip.isIPv4 { return IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next())) }
        return IPAddress(high: 0x2000_0000_0000_0000 | (rng.next() >> 3), low: rng.next())
    }
}
