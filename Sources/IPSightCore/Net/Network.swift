
/// An address block in CIDR notation, for allowlists.
public struct Network: Sendable, Equatable, CustomStringConvertible {
    public var address: IPAddress
    /// Prefix length within the family (0–32 for IPv4, 0–128 for IPv6).
    public var length: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        let bits = address.isIPv4 ? 32 : 128
        var length = bits
        if parts.count == 2 {
            guard let n = Int(parts[1]), (0...bits).contains(n) else { return nil }
            length = n
        }
        self.address = address.masked(to: length)
        self.length = length
    }

    public func contains(_ ip: IPAddress) -> Bool {
        ip.isIPv4 == address.isIPv4 && ip.masked(to: length) == address
    }

    public var description: String { address.networkDescription(length: length) }
}
