import IPSightCore

/// Training pairs in compact form: the stable hash of each entity and its address.
public struct TrainingPairs: Sendable {
    public var entityHashes: [UInt64] = []
    public var ips: [IPAddress] = []

    public init() {}

    public init(entityHashes: [UInt64], ips: [IPAddress]) {
        precondition(entityHashes.count == ips.count)
        self.entityHashes = entityHashes
        self.ips = ips
    }

    public var count: Int { ips.count }

    public mutating func append(entity: String, ip: IPAddress) {
        entityHashes.append(StableHash.xxh64(entity))
        ips.append(ip)
    }

    public mutating func append(entityHash: UInt64, ip: IPAddress) {
        entityHashes.append(entityHash)
        ips.append(ip)
    }
}
