import IPSightCore
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
    @OptionGroup var risk: RiskOptions
    @Option(help: "Write each row's dot_product (and risk) here as JSON lines.") var scores: String?

    func run() throws {
        let loaded = try ModelFile.load(path: model)
        let (data, report) = try PairFile.read(path: test, labelled: true, labelOptional: true)
        Report.readSummary(report, pairs: data.pairs.count)
        guard data.pairs.count > 0 else { throw ValidationError("\(test): no rows") }
        var fields: [(String, JSONValue)] = [("rows", .number(Double(data.pairs.count)))]
        let rows = data.pairs.entityHashes.map { Int32($0 % UInt64(loaded.hyperparameters.numEntityVectors)) }
        let dots = BatchScorer(model: loaded, threads: threads).score(entityRows: rows, ips: data.pairs.ips)
        var risks: [Float]? = nil
        if let assessor = try risk.assessor(model: loaded, threads: threads) {
            risks = data.pairs.ips.indices.map { i in
                Float(assessor.assess(entityHash: data.pairs.entityHashes[i], ip: data.pairs.ips[i], dotProduct: dots[i]).logOdds)
            }
        }
        if let scores { try writeScores(dots, risks, to: scores) }
        if let labels = data.labels {
            let anomaly = dots.map { -$0 }
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
            if let risks {
                fields += [
                    ("risk_auc", .number(rounded(Evaluation.auc(scores: risks, labels: labels)))),
                    ("risk_recall_at_fpr_1pct", .number(rounded(Evaluation.recall(atFalsePositiveRate: 0.01, anomalyScores: risks, labels: labels)))),
                    ("risk_recall_at_fpr_0.1pct", .number(rounded(Evaluation.recall(atFalsePositiveRate: 0.001, anomalyScores: risks, labels: labels)))),
                ]
            }
        } else {
            fields.append(("validation:discriminator_auc",
                           .number(rounded(Evaluation.discriminatorAUC(model: loaded, pairs: data.pairs, threads: threads)))))
        }
        print(JSONWriter.string(.object(fields)))
    }

    func rounded(_ v: Double) -> Double { (v * 100_000).rounded() / 100_000 }

    func writeScores(_ dots: [Float], _ risks: [Float]?, to path: String) throws {
        var out: [UInt8] = []
        out.reserveCapacity(dots.count * 48)
        for i in dots.indices {
            out.append(contentsOf: Array("{\"dot_product\": ".utf8))
            JSONWriter.appendNumber(dots[i], to: &out)
            if let risks {
                out.append(contentsOf: Array(", \"risk\": ".utf8))
                JSONWriter.appendNumber(1 / (1 + exp(-Double(risks[i]))), to: &out)
                out.append(contentsOf: Array(", \"risk_log_odds\": ".utf8))
                JSONWriter.appendNumber(risks[i], to: &out)
            }
            out.append(contentsOf: Array("}\n".utf8))
        }
        try AtomicFile.write(out, to: path)
    }
}

#if canImport(Glibc)
import Glibc
#endif
