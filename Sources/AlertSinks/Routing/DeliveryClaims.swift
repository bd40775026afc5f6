import IPSightCore
import Synchronization

/// What a delivery claim says about one alert for one sink, when several agents
/// may hold the same alert (a fleet reading the same logs): exactly one of them
/// delivers it.
public enum DeliveryClaim: Sendable, Equatable {
    /// This agent delivers it (also when the claims cannot be asked: a page sent
    /// twice is better than a page lost).
    case mine
    /// Another agent delivered it: nothing to send.
    case deliveredElsewhere
    /// Another agent holds it and has not delivered it yet: ask again later (its
    /// claim lapses if that agent died with it).
    case heldElsewhere
}

/// Claims on deliveries shared by the agents that may send the same alert. Both
/// calls block the delivery thread that makes them, for a bounded time.
public protocol DeliveryClaims: Sendable {
    func claim(_ alert: Alert, sink: String) -> DeliveryClaim
    /// The sink accepted the alert: nobody needs to send it again.
    func delivered(_ alert: Alert, sink: String)
}

extension DeliveryClaims {
    /// The alert's name for claims: the same on every agent that read the same login
    /// (where it was read from, which differs between agents, is left out).
    public static func key(_ alert: Alert, sink: String) -> String {
        let login = "\(alert.time)|\(alert.host ?? "")|\(alert.service)|\(alert.outcome.rawValue)|\(alert.user)|\(alert.ip)|\(alert.decision.rawValue)"
        return sink + ":" + String(StableHash.xxh64(login), radix: 16)
    }
}

/// Claims kept in memory, shared by the routers of one process: the twin for tests
/// of several agents' routers.
public final class MemoryDeliveryClaims: DeliveryClaims {
    private struct Entry {
        var holder: String
        var delivered: Bool
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let holder: String
    private let shared: MemoryDeliveryClaims?

    /// Claims of their own.
    public init() {
        holder = "memory"
        shared = nil
    }

    private init(holder: String, shared: MemoryDeliveryClaims) {
        self.holder = holder
        self.shared = shared
    }

    /// The same claims seen by another agent.
    public func agent(_ name: String) -> MemoryDeliveryClaims { MemoryDeliveryClaims(holder: name, shared: shared ?? self) }

    public func claim(_ alert: Alert, sink: String) -> DeliveryClaim {
        let key = Self.key(alert, sink: sink), holder = self.holder
        return (shared ?? self).entries.withLock { entries in
            guard let entry = entries[key] else {
                entries[key] = Entry(holder: holder, delivered: false)
                return .mine
            }
            if entry.delivered { return .deliveredElsewhere }
            return entry.holder == holder ? .mine : .heldElsewhere
        }
    }

    public func delivered(_ alert: Alert, sink: String) {
        let key = Self.key(alert, sink: sink), holder = self.holder
        (shared ?? self).entries.withLock { entries in
            if entries[key]?.holder == holder { entries[key]?.delivered = true }
        }
    }
}
