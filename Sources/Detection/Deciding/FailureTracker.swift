import IPSightCore
import IPInsights

/// Recent failed logins by source address, to recognise credential stuffing: one
/// address trying many accounts, then getting into one of them.
///
/// Memory is bounded: each address keeps its last `perAddress` failures, and once
/// more than `maxAddresses` addresses are tracked the ones idle longest are dropped.
struct FailureTracker {
    private struct Attempt {
        var time: Double
        var entity: UInt64
    }

    private var attempts: [IPAddress: [Attempt]] = [:]
    private let perAddress = 64
    private let maxAddresses = 100_000

    mutating func record(ip: IPAddress, entity: UInt64, time: Double) {
        var list = attempts[ip] ?? []
        list.append(Attempt(time: time, entity: entity))
        if list.count > perAddress { list.removeFirst(list.count - perAddress) }
        attempts[ip] = list
        if attempts.count > maxAddresses { forgetIdlest() }
    }

    /// Distinct entities other than `excluding` that `ip` failed against in the window ending at `time`.
    func targets(of ip: IPAddress, excluding: UInt64, window: Double, time: Double) -> (entities: Int, failures: Int) {
        guard let list = attempts[ip] else { return (0, 0) }
        var entities: Set<UInt64> = []
        var failures = 0
        for a in list where a.time >= time - window && a.time <= time + 1 && a.entity != excluding {
            entities.insert(a.entity)
            failures += 1
        }
        return (entities.count, failures)
    }

    /// Drops the older half of the addresses (by their last failure): rare, amortised.
    private mutating func forgetIdlest() {
        let byLast = attempts.map { ($0.key, $0.value.last?.time ?? 0) }.sorted { $0.1 < $1.1 }
        for (ip, _) in byLast.prefix(byLast.count / 2) { attempts[ip] = nil }
    }
}
