import ArgumentParser
import IPInsights
import IPInsightsFormats

struct ThresholdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threshold",
        abstract: "Turn a target false-positive rate into score thresholds, from normal traffic.",
        discussion: """
        NORMAL holds logins known to be legitimate (entity,ip rows, e.g. the most recent
        day). Prints the dot_product below which, and (with --history) the risk above
        which, the given share of normal logins would be flagged, and the distribution
        of the scores as a text histogram.
        Example: ipsight threshold --model model.ipsight --normal validation.csv --fpr 0.01 --fpr 0.001
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "Normal logins: entity,ip rows.") var normal: String
    @Option(help: "Target false-positive rate (repeatable).") var fpr: [Double] = [0.01]
    @Option(help: "Histogram bars.") var bins: Int = 20
    @Option(help: "Worker threads.") var threads: Int = 2
    @OptionGroup var risk: RiskOptions

    func validate() throws {
        for rate in fpr where !(rate > 0 && rate < 1) { throw ValidationError("--fpr must be between 0 and 1, got \(rate)") }
        if bins < 2 || bins > 200 { throw ValidationError("--bins must be between 2 and 200") }
    }

    func run() throws {
        let loaded = try ModelFile.load(path: model)
        let (data, report) = try PairFile.read(path: normal)
        Report.readSummary(report, pairs: data.pairs.count)
        guard data.pairs.count > 0 else { throw ValidationError("\(normal): no rows") }
        let rows = data.pairs.entityHashes.map { Int32($0 % UInt64(loaded.hyperparameters.numEntityVectors)) }
        let dots = BatchScorer(model: loaded, threads: threads).score(entityRows: rows, ips: data.pairs.ips)
        let sortedDots = dots.map(Double.init).sorted()
        var fields: [(String, JSONValue)] = [("normal_logins", .number(Double(dots.count)))]
        for rate in fpr {
            // Flag dot_product below the rate-quantile of normal traffic.
            fields.append(("dot_product_threshold_at_fpr_\(rate)", .number(quantile(sortedDots, rate))))
        }
        var risks: [Double]? = nil
        if let assessor = try risk.assessor(model: loaded, threads: threads) {
            let values = data.pairs.ips.indices.map {
                assessor.assess(entityHash: data.pairs.entityHashes[$0], ip: data.pairs.ips[$0], dotProduct: dots[$0]).risk
            }.sorted()
            for rate in fpr {
                fields.append(("risk_threshold_at_fpr_\(rate)", .number(quantile(values, 1 - rate))))
            }
            risks = values
        }
        print(JSONWriter.string(.object(fields)))
        Console.error("dot_product of normal logins (flag below the threshold):")
        histogram(sortedDots)
        if let risks {
            Console.error("risk of normal logins (flag above the threshold):")
            histogram(risks)
        }
    }

    /// The value with `q` of the sorted values below it.
    func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let index = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.down))))
        return sorted[index]
    }

    func histogram(_ sorted: [Double]) {
        guard let lo = sorted.first, let hi = sorted.last, hi > lo else {
            Console.error("  all \(sorted.count) values are \(sorted.first ?? 0)")
            return
        }
        var counts = [Int](repeating: 0, count: bins)
        for v in sorted { counts[min(bins - 1, Int((v - lo) / (hi - lo) * Double(bins)))] += 1 }
        let widest = counts.max()!
        for (k, c) in counts.enumerated() {
            let from = lo + (hi - lo) * Double(k) / Double(bins)
            let bar = String(repeating: "#", count: c == 0 ? 0 : max(1, c * 50 / widest))
            Console.error("  \(Console.fixed(from, 3).padding(toLength: 9)) \(String(c).padding(toLength: 8)) \(bar)")
        }
    }
}
