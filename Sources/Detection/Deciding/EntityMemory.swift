import IPSightCore
import IPInsights

/// What the agent has seen of each entity in the retention window, in memory:
/// login counts for cold start, exact addresses for first-seen flags, and the
/// pairs the entities' histories are rebuilt from.
struct EntityMemory {
    private struct Seen: Hashable {
        var entity: UInt64
        var ip: IPAddress
    }

    private(set) var pairs = TrainingPairs()
    private var counts: [UInt64: Int] = [:]
    private var seen: Set<Seen> = []
    /// Each entity's first distinct addresses (at most `firstKept`): what a cold
    /// entity's next login is compared with, without rebuilding the history.
    private var first: [UInt64: [IPAddress]] = [:]
    static let firstKept = 8

    var entityCount: Int { counts.count }

    func logins(_ entity: UInt64) -> Int { counts[entity] ?? 0 }

    func hasSeen(_ entity: UInt64, _ ip: IPAddress) -> Bool { seen.contains(Seen(entity: entity, ip: ip)) }

    /// The entity's first distinct addresses.
    func firstAddresses(_ entity: UInt64) -> [IPAddress] { first[entity] ?? [] }

    mutating func add(_ entity: UInt64, _ ip: IPAddress) {
        pairs.append(entityHash: entity, ip: ip)
        counts[entity, default: 0] += 1
        if seen.insert(Seen(entity: entity, ip: ip)).inserted, first[entity, default: []].count < Self.firstKept {
            first[entity, default: []].append(ip)
        }
    }
}
