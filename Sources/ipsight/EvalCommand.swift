import ArgumentParser
import IPInsights
import IPInsightsFormats

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure a model on labelled or unlabelled pairs.",
        discussion: """
        For rows entity,ip,label (label 1 = anomalous): ROC AUC of -dot_product, the recall
        of anomalies at 1% and 0.1% false positives, and precision/recall of the rule
        -dot_product > 0. For rows entity,ip: validation:discriminator_auc.
        Example: ipsight eval --model model.ipsight --test test.csv
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "entity,ip[,label] rows.") var test: String
    @Option(help: "Worker threads.") var threads: Int = 2

    func run() throws {
        let loaded = try ModelFile.load(path: model)
        let (data, report) = try PairFile.read(path: test, labelled: true, labelOptional: true)
        Report.readSummary(report, pairs: data.pairs.count)
        guard data.pairs.count > 0 else { throw ValidationError("\(test): no rows") }
        var fields: [(String, JSONValue)] = [("rows", .number(Double(data.pairs.count)))]
        if let labels = data.labels {
            let rows = data.pairs.entityHashes.map { Int32($0 % UInt64(loaded.hyperparameters.numEntityVectors)) }
            let scores = BatchScorer(model: loaded, threads: threads).score(entityRows: rows, ips: data.pairs.ips)
            let anomaly = scores.map { -$0 }
            let flagged = zip(anomaly, labels).filter { $0.0 > 0 }
            let truePositives = flagged.filter { $0.1 }.count
            let attacks = labels.filter { $0 }.count
            fields += [
                ("auc", .number(rounded(Evaluation.auc(scores: anomaly, labels: labels)))),
                ("recall_at_fpr_1pct", .number(rounded(Evaluation.recall(atFalsePositiveRate: 0.01, anomalyScores: anomaly, labels: labels)))),
                ("recall_at_fpr_0.1pct", .number(rounded(Evaluation.recall(atFalsePositiveRate: 0.001, anomalyScores: anomaly, labels: labels)))),
                ("precision", flagged.isEmpty ? .null : .number(rounded(Double(truePositives) / Double(flagged.count)))),
                ("recall", .number(rounded(Double(truePositives) / Double(max(attacks, 1))))),
            ]
        } else {
            fields.append(("validation:discriminator_auc",
                           .number(rounded(Evaluation.discriminatorAUC(model: loaded, pairs: data.pairs, threads: threads)))))
        }
        print(JSONWriter.string(.object(fields)))
    }

    func rounded(_ v: Double) -> Double { (v * 100_000).rounded() / 100_000 }
}
