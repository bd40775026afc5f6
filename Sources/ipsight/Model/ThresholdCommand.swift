#if canImport(Glibc)
import IPSightCore
import Glibc
#endif
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
        of the scores as a text histogram. Rows entity,ip,label with label 1 (and
        --attacks) are known attacks: they are left out of the thresholds, and --plot
        draws their distribution beside the normal logins'.
        Example: ipsight threshold --model model.ipsight --normal validation.csv --fpr 0.01 --fpr 0.001 --plot scores.svg
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "Normal logins: entity,ip rows (entity,ip,label rows: label 1 marks an attack).") var normal: String
    @Option(help: "Known attacks (entity,ip rows), for --plot.") var attacks: String?
    @Option(help: "Write an SVG of the score distributions with the thresholds marked.") var plot: String?
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
        let (data, report) = try PairFile.read(path: normal, labelled: true, labelOptional: true)
        Report.readSummary(report, pairs: data.pairs.count)
        var normalPairs = TrainingPairs(), attackPairs = TrainingPairs()
        for i in 0..<data.pairs.count {
            if data.labels?[i] == true {
                attackPairs.append(entityHash: data.pairs.entityHashes[i], ip: data.pairs.ips[i])
            } else {
                normalPairs.append(entityHash: data.pairs.entityHashes[i], ip: data.pairs.ips[i])
            }
        }
        if let attacks {
            let (extra, extraReport) = try PairFile.read(path: attacks)
            Report.readSummary(extraReport, pairs: extra.pairs.count)
            for i in 0..<extra.pairs.count { attackPairs.append(entityHash: extra.pairs.entityHashes[i], ip: extra.pairs.ips[i]) }
        }
        guard normalPairs.count > 0 else { throw ValidationError("\(normal): no normal rows") }
        let scorer = BatchScorer(model: loaded, threads: threads)
        func dots(_ pairs: TrainingPairs) -> [Float] {
            scorer.score(entityRows: pairs.entityHashes.map { Int32($0 % UInt64(loaded.hyperparameters.numEntityVectors)) }, ips: pairs.ips)
        }
        let normalDots = dots(normalPairs), attackDots = dots(attackPairs)
        let sortedDots = normalDots.map(Double.init).sorted()
        var fields: [(String, JSONValue)] = [("normal_logins", .number(Double(normalDots.count)))]
        if attackPairs.count > 0 { fields.append(("attacks", .number(Double(attackPairs.count)))) }
        var dotThresholds: [ScorePlot.Threshold] = []
        for rate in fpr {
            // Flag dot_product below the rate-quantile of normal traffic.
            let t = quantile(sortedDots, rate)
            fields.append(("dot_product_threshold_at_fpr_\(rate)", .number(t)))
            dotThresholds.append(.init(label: "FPR \(percent(rate)): below \(Console.fixed(t, 3))", value: t))
        }
        var panels = [ScorePlot.Panel(title: "dot_product (flag below the threshold)", axisLabel: "dot_product",
                                      normal: sortedDots, attacks: attackPairs.count > 0 ? attackDots.map(Double.init) : nil,
                                      thresholds: dotThresholds)]
        var risks: [Double]? = nil
        if let assessor = try risk.assessor(model: loaded, threads: threads) {
            func logOdds(_ pairs: TrainingPairs, _ dots: [Float]) -> [Double] {
                pairs.ips.indices.map { assessor.assess(entityHash: pairs.entityHashes[$0], ip: pairs.ips[$0], dotProduct: dots[$0]).logOdds }
            }
            let values = logOdds(normalPairs, normalDots).sorted()
            var riskThresholds: [ScorePlot.Threshold] = []
            for rate in fpr {
                let z = quantile(values, 1 - rate), r = 1 / (1 + exp(-z))
                fields.append(("risk_threshold_at_fpr_\(rate)", .number(r)))
                riskThresholds.append(.init(label: "FPR \(percent(rate)): risk above \(Console.fixed(r, 4))", value: z))
            }
            panels.append(.init(title: "risk (flag above the threshold)", axisLabel: "risk as log odds, log(risk / (1 − risk))",
                                normal: values, attacks: attackPairs.count > 0 ? logOdds(attackPairs, attackDots) : nil,
                                thresholds: riskThresholds))
            risks = values.map { 1 / (1 + exp(-$0)) }
        }
        print(JSONWriter.string(.object(fields)))
        Console.error("dot_product of normal logins (flag below the threshold):")
        histogram(sortedDots)
        if let risks {
            Console.error("risk of normal logins (flag above the threshold):")
            histogram(risks)
        }
        if let plot {
            let svg = ScorePlot(title: "Scores of \(normalPairs.count) normal logins" + (attackPairs.count > 0 ? " and \(attackPairs.count) attacks" : ""),
                                panels: panels).svg()
            try AtomicFile.write(Array(svg.utf8), to: plot)
            Console.error("plot written to \(plot)")
        }
    }

    /// A rate as a percentage without trailing zeros: 0.001 → "0.1%".
    func percent(_ rate: Double) -> String {
        var text = Console.fixed(rate * 100, 4)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text + "%"
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
