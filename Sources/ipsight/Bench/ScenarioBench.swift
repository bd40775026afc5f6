import Detection
import IPSightCore
import Agent
import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import IPInsights
import IPInsightsFormats
import LogSources
import Rules

/// `ipsight bench --scenarios DIR`: the agent's decisions (its detector, with the
/// shipped default config) on the populations `benchmarks/scenarios.py` writes,
/// each benign or an attack, as the share flagged (challenged or alerted) at the
/// default thresholds and at the risk thresholds that flag 1% and 0.1% of the
/// simulator's normal held-out logins.
struct ScenarioBench {
    var directory: String
    var model: Model?
    /// Where a model trained here is kept.
    var keep: String?
    var epochs: Int
    var threads: Int
    var networks: RoutedNetworksTable?

    struct Row {
        var scenario: String
        var label: Int
        var user: String
        var ip: String
        var failure: Bool
        var learn: Bool
    }

    struct Outcome {
        var decision: Decision
        var reason: String
        var risk: Double?
    }

    func run() throws {
        let history = try readHistory(directory + "/history.csv")
        let rows = try readScenarios(directory + "/scenarios.csv")
        var config = AgentConfig()
        config.stateDirectory = "/nonexistent"
        config.networks = networks

        // As the agent does: the most recent slice is held out to calibrate the risk,
        // and the model is trained on what comes before it.
        let held = Int(Double(history.count) * config.validationShare)
        let model = try self.model ?? train(EntityKeys.pairs(history[..<(history.count - held)], policy: config.policy))
        let t0 = Clock.now
        guard let calibration = Calibration.fit(model: model, observations: history, policy: config.policy, threads: threads) else {
            throw ValidationError("too little history to calibrate")
        }
        if getenv("IPSIGHT_SHOW_WEIGHTS") != nil {
            let r = calibration.riskModel
            for (k, name) in RiskModel.featureNames.enumerated() {
                print("  weight \(Console.fixed(r.weights[k], 3))  mean \(Console.fixed(r.means[k], 3))  scale \(Console.fixed(r.scales[k], 3))  \(name)")
            }
        }
        let detector = Detector(policy: config.policy, model: model)
        detector.preload(history)
        let entities = Set(history[..<(history.count - held)].map { StableHash.xxh64(config.policy.entity(user: $0.user, service: $0.service)) })
        detector.install(model: model, calibration: calibration, entities: entities)
        print("scenarios: \(Console.grouped(Double(history.count))) history logins, calibrated in \(Console.fixed(Clock.now - t0, 1)) s\(networks.map { ", \(Console.grouped(Double($0.networks.count))) routed networks" } ?? "")")

        let now = history.last.map(\.time) ?? 0
        var outcomes: [(Row, Outcome)] = []
        for (k, row) in rows.enumerated() {
            let event = LoginEvent(time: now + Double(k), host: "bench", service: "sshd", outcome: row.failure ? .failure : .success,
                                   user: row.user, ip: row.ip, port: nil, method: "password", rule: "bench/\(row.scenario)")
            let verdict = detector.decide(event, now: now + Double(k))
            if row.learn { detector.confirm(user: row.user, service: "sshd", ip: row.ip) }
            guard row.label >= 0, let verdict else { continue }
            outcomes.append((row, Outcome(decision: verdict.decision, reason: verdict.reason, risk: verdict.risk)))
        }
        print(Self.report(outcomes), terminator: "")
    }

    /// The table: per scenario, the share flagged at the default thresholds and at
    /// the risk thresholds of 1% and 0.1% false positives on the normal logins.
    static func report(_ outcomes: [(Row, Outcome)]) -> String {
        let normal = outcomes.filter { $0.0.scenario == "normal" }.compactMap(\.1.risk).sorted()
        func threshold(_ rate: Double) -> Double {
            guard !normal.isEmpty else { return 1 }
            let index = min(normal.count - 1, Int((1 - rate) * Double(normal.count)))
            return normal[index].nextUp
        }
        let at1 = threshold(0.01), at01 = threshold(0.001)
        // A decision not made by the risk (cold start, credential stuffing) flags
        // whatever the threshold; a risk flags at or above it.
        func flagged(_ o: Outcome, _ t: Double?) -> Bool {
            guard let t else { return o.decision == .challenge || o.decision == .alert }
            if o.reason == "risk" || o.reason == "usual" { return (o.risk ?? 0) >= t }
            return o.decision == .challenge || o.decision == .alert
        }
        var order: [String] = []
        var groups: [String: [Outcome]] = [:]
        var labels: [String: Int] = [:]
        for (row, o) in outcomes {
            if groups[row.scenario] == nil { order.append(row.scenario) }
            groups[row.scenario, default: []].append(o)
            labels[row.scenario] = row.label
        }
        func share(_ list: [Outcome], _ t: Double?) -> String {
            Console.fixed(Double(list.filter { flagged($0, t) }.count) / Double(max(list.count, 1)), 3)
        }
        var out = "risk thresholds from \(normal.count) normal logins: 1% FPR \(Console.fixed(at1, 4)), 0.1% FPR \(Console.fixed(at01, 4))\n"
        out += "scenario             kind    rows   flagged at defaults   at 1% FPR   at 0.1% FPR\n"
        for kind in [0, 1] {
            for name in order where labels[name] == kind {
                let list = groups[name]!
                out += name.padding(21) + (kind == 0 ? "benign " : "attack ") + String(list.count).leftPadding(6)
                    + share(list, nil).leftPadding(22) + share(list, at1).leftPadding(12) + share(list, at01).leftPadding(14) + "\n"
            }
        }
        return out
    }

    func train(_ pairs: TrainingPairs) throws -> Model {
        let hp = try Hyperparameters(strings: [
            "num_entity_vectors": "20000", "vector_dim": "128", "random_negative_sampling_rate": "5",
            "shuffled_negative_sampling_rate": "1", "mini_batch_size": "1000", "epochs": String(epochs),
            "learning_rate": "0.01",
        ])
        let model = Model(hyperparameters: hp)
        model.initialise(seed: 1)
        let trainer = Trainer(model: model, seed: 1, threads: threads)
        let t0 = Clock.now
        _ = trainer.train(pairs)
        print("scenarios: model trained on \(Console.grouped(Double(pairs.count))) logins in \(Console.fixed(Clock.now - t0, 0)) s")
        if let keep { try ModelFile.save(model, to: keep) }
        return model
    }

    func readHistory(_ path: String) throws -> [Observation] {
        var out: [Observation] = []
        var parser = SyslogHeaderParser(timeZone: .utc, reference: 0)
        try ByteLineReader(path: path).forEachLine { line in
            let fields = line.bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            guard fields.count == 3, let time = fields[0].withUnsafeBytes({ parser.parseTimestamp($0) }) else {
                throw ValidationError("\(path):\(line.number): expected timestamp,user,ip")
            }
            out.append(Observation(time: time, user: String(decoding: fields[1], as: UTF8.self),
                                   ip: String(decoding: fields[2], as: UTF8.self), service: "sshd"))
            return true
        }
        return out
    }

    func readScenarios(_ path: String) throws -> [Row] {
        var out: [Row] = []
        try ByteLineReader(path: path).forEachLine { line in
            let f = line.bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
            guard f.count == 6, let label = Int(f[1]) else { throw ValidationError("\(path):\(line.number): expected scenario,label,user,ip,outcome,learn") }
            out.append(Row(scenario: f[0], label: label, user: f[2], ip: f[3], failure: f[4] == "failure", learn: f[5] == "1"))
            return true
        }
        return out
    }
}

private extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    func leftPadding(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
