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

    var entityCount: Int { counts.count }

    func logins(_ entity: UInt64) -> Int { counts[entity] ?? 0 }

    func hasSeen(_ entity: UInt64, _ ip: IPAddress) -> Bool { seen.contains(Seen(entity: entity, ip: ip)) }

    mutating func add(_ entity: UInt64, _ ip: IPAddress) {
        pairs.append(entityHash: entity, ip: ip)
        counts[entity, default: 0] += 1
        seen.insert(Seen(entity: entity, ip: ip))
    }
}
