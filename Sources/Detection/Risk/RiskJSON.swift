import IPSightCore

extension RiskAssessor.Assessment {
    /// `, "risk": p, "risk_log_odds": z, "reasons": {...}`: what an analyst reads.
    public func appendJSON(to out: inout [UInt8]) {
        let a = self
        var reasons: [(String, JSONValue)] = [
            ("main_factor", .string(a.mainReason)),
            ("main_factor_log_odds", .number((a.mainFactor.logOdds * 1000).rounded() / 1000)),
            ("logins_in_history", .number(Double(a.facts.logins))),
            ("travel_rate", .number((a.facts.travelRate * 10_000).rounded() / 10_000)),
            ("shared_prefix_bits", .number(Double(a.facts.sharedBits))),
            ("other_users_of_network", .number(Double(a.facts.networkEntities.narrow))),
        ]
        if let network = a.nearestNetwork {
            reasons.append(("nearest_network", .string(network)))
            reasons.append(("share_of_logins_near", .number((a.shareNearNetwork * 10_000).rounded() / 10_000)))
        }
        // Only with a routed-network table (--networks); null when the entity has no
        // login over the address's family or the table has no row of it.
        if a.routed {
            reasons.append(("routed_networks_away", a.facts.routedDistance.map { .number(Double($0)) } ?? .null))
            reasons.append(("asn", a.asn.map { .number(Double($0)) } ?? .null))
            reasons.append(("nearest_network_asn", a.nearestASN.map { .number(Double($0)) } ?? .null))
        }
        out.append(contentsOf: Array(", \"risk\": ".utf8))
        JSONWriter.appendNumber(a.risk, to: &out)
        out.append(contentsOf: Array(", \"risk_log_odds\": ".utf8))
        JSONWriter.appendNumber(a.logOdds, to: &out)
        out.append(contentsOf: Array(", \"reasons\": ".utf8))
        JSONWriter.append(.object(reasons), to: &out)
    }
}
