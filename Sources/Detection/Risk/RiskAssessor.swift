/// The risk of logins with the reasons a person can act on: the model, the
/// entities' history and the fitted risk weights together.
public struct RiskAssessor: Sendable {
    public let model: Model
    public let history: EntityHistory
    public let riskModel: RiskModel

    public init(model: Model, history: EntityHistory, riskModel: RiskModel) {
        self.model = model
        self.history = history
        self.riskModel = riskModel
    }

    /// Fits the risk weights on `heldOut` normal logins (not in `history`).
    /// `networks` is the optional routed-network table.
    public init(model: Model, history: TrainingPairs, heldOut: TrainingPairs, networks: RoutedNetworks? = nil,
                threads: Int = 2) {
        let entityHistory = EntityHistory(history, networks: networks)
        self.init(model: model, history: entityHistory,
                  riskModel: RiskModel.fit(model: model, history: entityHistory, normal: heldOut, threads: threads))
    }

    public struct Assessment: Sendable {
        public var dotProduct: Float
        public var risk: Double
        public var logOdds: Double
        public var facts: RiskModel.Facts
        /// The feature that raised the risk most, and by how many log-odds.
        public var mainFactor: (name: String, logOdds: Double)
        /// The nearest network of the entity's history (a /24 or /48) and the share
        /// of its logins in the wider network around it (/16 or /32).
        public var nearestNetwork: String?
        public var shareNearNetwork: Double
        /// Whether a routed-network table was used: then the AS of the address's
        /// network, and of the entity's network it is `facts.routedDistance` routed
        /// networks from (nil where the table or the history lacks the family).
        public var routed = false
        public var asn: UInt32? = nil
        public var nearestASN: UInt32? = nil

        /// The main factor in words, with the facts behind it.
        public var mainReason: String {
            let v4 = facts.familyBits == 32
            switch mainFactor.name {
            case "dot_product", "negative dot_product":
                return "the model finds the address unlike the entity's networks (dot_product \((Double(dotProduct) * 100).rounded() / 100))"
            case "shared prefix with history":
                return "the address shares only \(facts.sharedBits) leading bits with the nearest address the entity used"
            case "activity":
                return facts.familyLogins == facts.logins
                    ? "the entity logs in rarely (\(facts.logins) logins in its history)"
                    : "the entity logs in rarely over \(v4 ? "IPv4" : "IPv6") (\(facts.familyLogins) of \(facts.logins) logins in its history)"
            case "IPv6", "new address family":
                return facts.familyLogins == 0
                    ? "the entity has never logged in over \(v4 ? "IPv4" : "IPv6")"
                    : "an \(v4 ? "IPv4" : "IPv6") address (\(facts.familyLogins) of the entity's \(facts.logins) logins are)"
            case "IPv6 × shared prefix":
                return "the address shares only \(facts.sharedBits) leading bits with the nearest IPv6 address the entity used"
            case "routed networks away":
                return facts.routedDistance.map { "the address is \($0) routed networks from the nearest network the entity used" }
                    ?? "the entity has no known network over \(v4 ? "IPv4" : "IPv6")"
            case "travel rate":
                return "the entity seldom uses unrelated networks (\((facts.travelRate * 1000).rounded() / 10)% of its logins)"
            case "same /16 (/32) as history":
                return "a \(v4 ? "/16" : "/32") network the entity has not used"
            case "same /24 (/48) as history":
                return "a \(v4 ? "/24" : "/48") network the entity has not used"
            case "new network × accounts in its /24 (/48)", "new network × accounts in its AS (/16, /32)":
                let narrow = facts.networkEntities.narrow
                return narrow == 0 ? "a network no other account of the organisation uses (its \(v4 ? "/24" : "/48"))"
                    : "a network only \(narrow) other accounts use (its \(v4 ? "/24" : "/48"))"
            case "own logins in the same network", "own logins within 8 networks", "own logins within 64 networks":
                let share = facts.density.last ?? 0
                return "few of the entity's logins are near the address (\((share * 1000).rounded() / 10)% within 64 networks)"
            default:
                return "an unrelated network for an entity with \(facts.logins) logins"
            }
        }
    }

    public func assess(entityHash: UInt64, ip: IPAddress, dotProduct: Float) -> Assessment {
        let facts = RiskModel.facts(dotProduct: dotProduct, history: history, entityHash: entityHash, ip: ip)
        let features = RiskModel.features(facts, history: history)
        let z = riskModel.logOdds(features)
        var main = riskModel.contributions(features).max { $0.logOdds < $1.logOdds }!
        main.name = RiskModel.baseName(main.name)
        var network: String? = nil
        var share = 0.0
        if let nearest = facts.nearest {
            network = nearest.networkDescription(length: nearest.isIPv4 ? 24 : 48)
            let wide = history.count(entityHash: entityHash, in: nearest, length: nearest.isIPv4 ? 16 : 32)
            share = Double(wide) / Double(max(facts.logins, 1))
        }
        var assessment = Assessment(dotProduct: dotProduct, risk: 1 / (1 + exp(-z)), logOdds: z, facts: facts,
                                    mainFactor: main, nearestNetwork: network, shareNearNetwork: share)
        if let networks = history.networks {
            assessment.routed = true
            assessment.asn = networks.asn(of: ip)
            assessment.nearestASN = history.routedNearest(entityHash: entityHash, to: ip).flatMap { networks.asn(of: $0.address) }
        }
        return assessment
    }
}

#if canImport(Glibc)
import IPInsights
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
