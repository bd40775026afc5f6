import IPSightCore
import IPInsights

/// What turns a model's dot_product into decisions: the risk weights fitted on
/// held-out normal logins, and the risks of those logins by service, sorted, so
/// that thresholds given as false-positive rates resolve against the config in
/// force (a reload that changes them needs no recalibration).
public struct Calibration: Sendable {
    public var riskModel: RiskModel
    /// Risks of the held-out normal logins, by service, ascending.
    var normalRisks: [String: [Double]]
    var allRisks: [Double]
    /// The median dot_product of normal logins: what an entity the model has not
    /// been trained on is scored with, so that its risk rests on its history.
    public var typicalDotProduct: Float
    /// The routed-network table the risk weights were fitted with: the history
    /// scored against them must use the same one, or the routed feature would
    /// mean something else than it did in the fit.
    public var networks: RoutedNetworksTable?

    /// Just above the q-quantile of the normal risks of `service` (a service with
    /// little traffic of its own borrows everyone's distribution; nil: everyone's).
    public func riskQuantile(service: String?, _ q: Double) -> Double {
        let own = service.flatMap { normalRisks[$0] } ?? []
        return Calibration.quantile(sorted: own.count >= Calibration.ownSample ? own : allRisks, q)
    }

    /// Services with enough normal logins of their own to have their own thresholds.
    public var servicesWithOwnRisks: [String] { normalRisks.filter { $0.value.count >= Calibration.ownSample }.map(\.key) }
    static let ownSample = 50

    /// Fits on `observations` (oldest first): the most recent `validationShare`
    /// (at most 20,000) are the normal traffic, the rest the history, with the
    /// config's routed-network table when it has one. Nil when there are too few.
    public static func fit(model: Model, observations: [Observation], policy: DecisionPolicy,
                           threads: Int = 1) -> Calibration? {
        let share = Int(Double(observations.count) * policy.validationShare)
        let heldCount = min(max(share, min(50, observations.count / 2)), 20_000)
        guard heldCount >= 10, observations.count - heldCount >= 10 else { return nil }
        let split = observations.count - heldCount
        let history = EntityKeys.pairs(observations[..<split], policy: policy)
        let normal = EntityKeys.pairs(observations[split...], policy: policy)
        guard history.count > 0, normal.count > 0 else { return nil }
        let assessor = RiskAssessor(model: model, history: history, heldOut: normal, networks: policy.networks?.networks,
                                    threads: threads)

        var risks: [String: [Double]] = [:]
        var all: [Double] = []
        let dots = BatchScorer(model: model, threads: threads).score(
            entityRows: normal.entityHashes.map { Int32($0 % UInt64(model.hyperparameters.numEntityVectors)) }, ips: normal.ips)
        var k = 0
        for o in observations[split...] {
            guard IPAddress(o.ip) != nil else { continue }
            let r = assessor.assess(entityHash: normal.entityHashes[k], ip: normal.ips[k], dotProduct: dots[k]).risk
            risks[o.service, default: []].append(r)
            all.append(r)
            k += 1
        }
        for key in risks.keys { risks[key]!.sort() }
        return Calibration(riskModel: assessor.riskModel, normalRisks: risks, allRisks: all.sorted(),
                           typicalDotProduct: dots.sorted()[dots.count / 2], networks: policy.networks)
    }

    /// Just above the q-quantile (nearest rank) of an ascending sample, so that
    /// the share of normal logins at or above it is at most 1 − q; 1 for an empty
    /// sample, so nothing fires.
    static func quantile(sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 1 }
        let index = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return min(1, sorted[index].nextUp)
    }
}

/// How observations become entities: the user, or user@service.
public enum EntityKeys {
    public static func pairs(_ observations: ArraySlice<Observation>, policy: DecisionPolicy) -> TrainingPairs {
        var pairs = TrainingPairs()
        for o in observations {
            guard let ip = IPAddress(o.ip) else { continue }
            pairs.append(entity: policy.entity(user: o.user, service: o.service), ip: ip)
        }
        return pairs
    }

    public static func pairs(_ observations: [Observation], policy: DecisionPolicy) -> TrainingPairs {
        pairs(observations[...], policy: policy)
    }
}
