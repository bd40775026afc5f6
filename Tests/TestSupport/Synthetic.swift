import IPInsights
import IPSightCore

/// Users, each at home in its own /16, as a few hundred training pairs.
public enum Synthetic {
    public static let homes: [String: UInt32] = ["alice": 10 << 24 | 1 << 16, "bob": 10 << 24 | 2 << 16,
                                           "carol": 172 << 24 | 16 << 16, "dave": 192 << 24 | 168 << 16,
                                           "erin": 10 << 24 | 9 << 16]
    public static let users = homes.keys.sorted()

    public static func address(_ user: String, _ rng: inout SeededRandom) -> String {
        IPAddress(ipv4: homes[user]! | UInt32(rng.below(4) << 8 | (1 + rng.below(250)))).description
    }

    public static func model(seed: UInt64 = 3) -> Model {
        var rng = SeededRandom(seed: seed)
        var pairs = TrainingPairs()
        for _ in 0..<600 {
            let user = users[rng.below(users.count)]
            pairs.append(entity: user, ip: IPAddress(address(user, &rng))!)
        }
        var hp = Hyperparameters(numEntityVectors: 64, vectorDim: 16)
        hp.epochs = 30
        hp.learningRate = 0.01
        hp.miniBatchSize = 32
        hp.batchMetricsPublishInterval = 1_000_000
        let model = Model(hyperparameters: hp)
        model.initialise(seed: seed)
        _ = Trainer(model: model, seed: seed, threads: 1).train(pairs)
        return model
    }

    public static func observations(_ count: Int, seed: UInt64 = 5) -> [Observation] {
        var rng = SeededRandom(seed: seed)
        return (0..<count).map { i in
            let user = users[i % users.count]
            return Observation(time: 1_700_000_000 + Double(i) * 60, user: user, ip: address(user, &rng), service: "sshd")
        }
    }

    /// An sshd line as syslog writes it.
    public static func sshdLine(minute: Int, user: String, ip: String) -> String {
        let h = 10 + minute / 60, m = minute % 60
        let hh = h < 10 ? "0\(h)" : "\(h)", mm = m < 10 ? "0\(m)" : "\(m)"
        return "Nov  4 \(hh):\(mm):00 host sshd[123]: Accepted password for \(user) from \(ip) port 22 ssh2\n"
    }
}
