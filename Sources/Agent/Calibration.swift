import IPInsights

/// What turns a model's dot_product into decisions: the risk weights fitted on
/// held-out normal logins, and each service's thresholds as risk values
/// (false-positive-rate thresholds resolved on that same normal traffic).
public struct Calibration: Sendable {
    public var riskModel: RiskModel
    public var thresholds: [String: (challenge: Double, alert: Double)]
    public var defaultThresholds: (challenge: Double, alert: Double)

    public func thresholds(for service: String) -> (challenge: Double, alert: Double) {
        thresholds[service] ?? defaultThresholds
    }

    /// Fits on `observations` (oldest first): the most recent `validationShare`
    /// are the normal traffic, the rest the history. Nil when there are too few.
    public static func fit(model: Model, observations: [Observation], config: AgentConfig,
                           threads: Int = 1) -> Calibration? {
        let heldCount = max(Int(Double(observations.count) * config.validationShare), min(50, observations.count / 2))
        guard heldCount >= 10, observations.count - heldCount >= 10 else { return nil }
        let split = observations.count - heldCount
        let history = EntityKeys.pairs(observations[..<split], config: config)
        let normal = EntityKeys.pairs(observations[split...], config: config)
        guard history.count > 0, normal.count > 0 else { return nil }
        let assessor = RiskAssessor(model: model, history: history, heldOut: normal, threads: threads)

        // Risks of the held-out normal logins, by service, for rate thresholds.
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
        func resolve(_ t: AgentConfig.Threshold, _ sample: [Double]) -> Double {
            switch t {
            case .risk(let v): return v
            case .falsePositiveRate(let rate): return quantile(sample, 1 - rate)
            }
        }
        func pair(_ t: AgentConfig.Thresholds, _ sample: [Double]) -> (challenge: Double, alert: Double) {
            let c = resolve(t.challenge, sample), a = resolve(t.alert, sample)
            return (min(c, a), a)
        }
        var perService: [String: (challenge: Double, alert: Double)] = [:]
        let services = Set(risks.keys).union(config.serviceThresholds.keys)
        for service in services {
            // A service with little traffic of its own borrows everyone's distribution.
            let sample = (risks[service]?.count ?? 0) >= 50 ? risks[service]! : all
            perService[service] = pair(config.thresholds(for: service), sample)
        }
        return Calibration(riskModel: assessor.riskModel, thresholds: perService,
                           defaultThresholds: pair(config.thresholds, all))
    }

    /// The q-quantile (nearest rank above); 1 for an empty sample, so nothing fires.
    static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return 1 }
        let sorted = values.sorted()
        let index = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        // Just above the quantile: a threshold is "risk at or above fires".
        return min(1, sorted[index].nextUp)
    }
}

/// How observations become entities: the user, or user@service.
public enum EntityKeys {
    public static func entity(user: String, service: String, config: AgentConfig) -> String {
        config.entity == .user ? user : "\(user)@\(service)"
    }

    public static func pairs(_ observations: ArraySlice<Observation>, config: AgentConfig) -> TrainingPairs {
        var pairs = TrainingPairs()
        for o in observations {
            guard let ip = IPAddress(o.ip) else { continue }
            pairs.append(entity: entity(user: o.user, service: o.service, config: config), ip: ip)
        }
        return pairs
    }

    public static func pairs(_ observations: [Observation], config: AgentConfig) -> TrainingPairs {
        pairs(observations[...], config: config)
    }
}
