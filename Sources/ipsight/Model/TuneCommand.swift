import IPSightCore
import ArgumentParser
import IPInsights
import IPInsightsFormats

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search hyperparameters for the best validation:discriminator_auc.",
        discussion: """
        Random search over the tunable ranges of the specification: integers uniformly (vector_dim,
        num_entity_vectors and mini_batch_size on a log scale), learning_rate and weight_decay on a
        log scale. Without --range, vector_dim, learning_rate and the two sampling rates are tuned.
        -H fixes other hyperparameters (num_entity_vectors is required unless tuned).
        Example:
          ipsight tune --train train.csv --validation validation.csv --max-jobs 8 \\
            -H num_entity_vectors=20000 -H epochs=3 --range vector_dim=32:256 --output best.ipsight
        """
    )

    @Option(help: "Training data.") var train: String
    @Option(help: "Validation data (the objective).") var validation: String
    @Option(help: "How many training jobs to run.") var maxJobs: Int = 10
    @Option(name: .customLong("range"), help: ArgumentHelp("A range to search, name=min:max (repeatable).", valueName: "name=min:max"))
    var ranges: [String] = []
    @OptionGroup var hyperparameters: HyperparameterOptions
    @OptionGroup var negatives: RandomNegativeOptions
    @Option(help: "Where to write the best model.") var output: String?
    @Option(help: "Random seed of the search and of each job.") var seed: UInt64 = 1
    @Option(help: "Worker threads per job.") var threads: Int = 2

    /// The specification's tunable ranges.
    static let tunable: [String: (Double, Double)] = [
        "epochs": (1, 100), "learning_rate": (1e-4, 0.1), "mini_batch_size": (100, 50_000),
        "num_entity_vectors": (10_000, 1_000_000), "num_ip_encoder_layers": (1, 10),
        "random_negative_sampling_rate": (0, 10), "shuffled_negative_sampling_rate": (0, 10),
        "vector_dim": (8, 256), "weight_decay": (0.0, 1.0),
    ]
    static let logScale: Set<String> = ["learning_rate", "weight_decay", "vector_dim", "num_entity_vectors", "mini_batch_size"]

    func parsedRanges() throws -> [(String, Double, Double)] {
        if ranges.isEmpty {
            return ["vector_dim", "learning_rate", "random_negative_sampling_rate", "shuffled_negative_sampling_rate"].map {
                ($0, TuneCommand.tunable[$0]!.0, TuneCommand.tunable[$0]!.1)
            }
        }
        return try ranges.map { item in
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            let bounds = parts.count == 2 ? parts[1].split(separator: ":").map { Double($0) } : []
            guard parts.count == 2, bounds.count == 2, let lo = bounds[0], let hi = bounds[1], lo <= hi else {
                throw ValidationError("--range expects name=min:max, got '\(item)'")
            }
            guard let spec = Hyperparameters.spec(named: parts[0]), let allowed = TuneCommand.tunable[parts[0]] else {
                throw ValidationError("'\(parts[0])' is not tunable (tunable: \(TuneCommand.tunable.keys.sorted().joined(separator: ", ")))")
            }
            guard lo >= allowed.0, hi <= allowed.1 else {
                throw ValidationError("\(parts[0]) range \(lo):\(hi) is outside its tunable range \(Hyperparameters.Spec.format(allowed.0, spec.kind)):\(Hyperparameters.Spec.format(allowed.1, spec.kind))")
            }
            return (parts[0], lo, hi)
        }
    }

    func sample(_ name: String, _ lo: Double, _ hi: Double, _ rng: inout SeededRandom) -> String {
        let integer = Hyperparameters.spec(named: name)?.kind == .integer
        var value: Double
        if TuneCommand.logScale.contains(name) {
            let low = max(lo, integer ? 1 : 1e-7)
            if name == "weight_decay", lo == 0, rng.unit() < 0.2 { return "0.0" }
            value = low * pow(hi / low, Double(rng.unit()))
        } else {
            value = lo + (hi - lo) * Double(rng.unit())
        }
        if integer { return String(Int(min(max(value.rounded(), lo), hi))) }
        return "\(value)"
    }

    func run() throws {
        let searched = try parsedRanges()
        let fixed = try hyperparameters.strings()
        for (name, _, _) in searched where fixed[name] != nil {
            throw ValidationError("\(name) is both fixed with -H and searched with --range")
        }
        let randomNegatives = try negatives.randomNegatives()
        let (trainData, trainReport) = try PairFile.read(path: train)
        Report.readSummary(trainReport, pairs: trainData.pairs.count)
        let (validationData, validationReport) = try PairFile.read(path: validation)
        Report.readSummary(validationReport, pairs: validationData.pairs.count)

        var rng = SeededRandom(seed: seed)
        var results: [(job: Int, values: [String: String], auc: Double, seconds: Double)] = []
        var best: (auc: Double, model: Model)? = nil
        for job in 1...max(1, maxJobs) {
            var strings = fixed
            var hp: Hyperparameters? = nil
            // Resample draws that break a joint rule (1 ≤ R + S ≤ 500).
            for _ in 0..<100 {
                for (name, lo, hi) in searched { strings[name] = sample(name, lo, hi, &rng) }
                if let valid = try? Hyperparameters(strings: strings) { hp = valid; break }
            }
            guard let hp else { _ = try Hyperparameters(strings: strings); continue }
            let started = Clock.now
            let model = Model(hyperparameters: hp)
            model.initialise(seed: seed &+ UInt64(job))
            let trainer = Trainer(model: model, seed: seed &+ UInt64(job), threads: threads)
            trainer.randomNegatives = randomNegatives
            _ = trainer.train(trainData.pairs) { event in
                if case let .progress(epoch, batch, batches) = event, batch % 16 == 0 || batch == batches {
                    Console.progress("job \(job)/\(maxJobs) epoch \(epoch + 1)/\(hp.epochs)", done: batch, total: batches)
                }
            }
            let auc = Evaluation.discriminatorAUC(model: model, pairs: validationData.pairs, threads: threads)
            let seconds = Clock.now - started
            let values = Dictionary(uniqueKeysWithValues: searched.map { ($0.0, strings[$0.0]!) })
            results.append((job, values, auc, seconds))
            Console.error("job \(job): " + searched.map { "\($0.0)=\(strings[$0.0]!)" }.joined(separator: " ") +
                          " validation:discriminator_auc=\(Console.fixed(auc, 4)) (\(Console.fixed(seconds, 1)) s)")
            if auc > (best?.auc ?? -1) { best = (auc, model) }
        }
        // The table, best first.
        let names = searched.map(\.0)
        var table = [["job"] + names + ["validation:discriminator_auc", "seconds"]]
        for r in results.sorted(by: { $0.auc > $1.auc }) {
            table.append([String(r.job)] + names.map { r.values[$0]! } + [Console.fixed(r.auc, 5), Console.fixed(r.seconds, 1)])
        }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max()! }
        for row in table {
            print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset]) }.joined(separator: "  "))
        }
        if let output, let best {
            try ModelFile.save(best.model, to: output)
            Console.error("best model (validation:discriminator_auc=\(Console.fixed(best.auc, 5))) written to \(output)")
        }
    }
}

extension String {
    func padding(toLength n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

#if canImport(Glibc)
import Glibc
#endif
