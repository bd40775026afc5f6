import IPSightCore
import ArgumentParser
import IPInsights
import IPInsightsFormats

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a model on entity,ip pairs (CSV, plain or gzip).",
        discussion: """
        Example (the IP Insights tutorial's settings):
          ipsight train --train train.csv --validation validation.csv --output model.ipsight \\
            -H num_entity_vectors=20000 -H vector_dim=128 -H epochs=5 -H learning_rate=0.01 \\
            -H mini_batch_size=1000 -H random_negative_sampling_rate=5 -H shuffled_negative_sampling_rate=1
        With --initial-model, training continues from an existing model (its
        num_entity_vectors, vector_dim and num_ip_encoder_layers are kept).
        With --networks, random negatives are addresses of routed networks (each
        network equally likely) rather than of the whole address space.
        A new model keeps each entity's training logins and adds log(logins + 1),
        centred on a typical entity, to its scores: the log odds against a takeover
        of an account picked regardless of its activity. --no-activity-prior gives
        the spec's score alone; a warm start keeps the initial model's choice.
        """
    )

    @Option(help: "Training data: entity,ip rows.") var train: String
    @Option(help: "Validation data for validation:discriminator_auc.") var validation: String?
    @Option(help: "Where to write the model.") var output: String
    @Option(help: "A model to continue training (warm start).") var initialModel: String?
    @OptionGroup var hyperparameters: HyperparameterOptions
    @OptionGroup var negatives: RandomNegativeOptions
    @Option(help: "Random seed; the same seed, data and settings give the same model.") var seed: UInt64 = 1
    @Option(help: "Refuse the data if more than this share of rows is malformed.") var maxBadRows: Double = 0.01
    @Option(help: "Worker threads.") var threads: Int = 2
    @Flag(inversion: .prefixedNo, help: "Add each entity's activity prior to its scores (new models only).")
    var activityPrior = true
    @Flag(help: "Keep the last step's parameters, as SageMaker does, instead of the mean of the iterates after the first fifth of the run.")
    var lastIterate = false
    @Option(help: ArgumentHelp("Rows of the hashed prefix table, a power of two (default: 4 × num_entity_vectors, within 2^16...2^22).", visibility: .hidden))
    var ipBuckets: Int?

    func run() throws {
        var strings = try hyperparameters.strings()
        var initial: Model? = nil
        if let initialModel {
            let model = try ModelFile.load(path: initialModel)
            let fixed = ["num_entity_vectors", "vector_dim", "num_ip_encoder_layers"]
            let current = model.hyperparameters.strings
            for name in fixed {
                if let given = strings[name], given != current[name] {
                    throw ValidationError("\(name)=\(given) differs from the initial model's \(current[name]!); a warm start keeps the model's shape")
                }
                strings[name] = current[name]
            }
            initial = model
        }
        let hp = try Hyperparameters(strings: strings)
        // Read first: a bad table should fail before the data is read.
        let randomNegatives = try negatives.randomNegatives()
        let started = Clock.now
        let (trainData, trainReport) = try PairFile.read(path: train, maximumBadShare: maxBadRows)
        Report.readSummary(trainReport, pairs: trainData.pairs.count)
        var validationPairs: TrainingPairs? = nil
        if let validation {
            let (data, report) = try PairFile.read(path: validation, maximumBadShare: maxBadRows)
            Report.readSummary(report, pairs: data.pairs.count)
            validationPairs = data.pairs
        }
        guard trainData.pairs.count > 0 else { throw ValidationError("\(train): no training pairs") }
        Console.error("read in \(Console.fixed(Clock.now - started, 2)) s")

        let model: Model
        if let initial {
            // Same shape, new training settings.
            model = initial.copy(settings: hp)
            Console.error("warm start from \(initialModel!) (\(Console.grouped(Double(initial.trainedPairs))) pairs in \(initial.trainedEpochs) epochs so far)")
            if initial.hasActivityPrior != activityPrior {
                Console.error("note: the initial model \(initial.hasActivityPrior ? "has" : "has no") activity prior, and a warm start keeps it that way")
            }
        } else {
            if let ipBuckets, ipBuckets <= 0 || ipBuckets & (ipBuckets - 1) != 0 || ipBuckets > 1 << 26 {
                throw ValidationError("--ip-buckets must be a power of two up to 2^26")
            }
            model = Model(hyperparameters: hp, layout: ipBuckets.map { IPEncoderLayout(buckets: $0) }, activityPrior: activityPrior)
            model.initialise(seed: seed)
        }
        Console.error("hyperparameters: " + hp.orderedStrings.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        let trainer = Trainer(model: model, seed: seed, threads: threads)
        if lastIterate { trainer.averaging = nil }
        trainer.randomNegatives = randomNegatives
        _ = trainer.train(trainData.pairs, validation: validationPairs) { event in
            Report.training(event, epochs: hp.epochs)
        }
        try ModelFile.save(model, to: output)
        Console.error("model written to \(output)")
    }
}

/// How the commands describe what they did.
enum Report {
    static func readSummary(_ report: ReadReport, pairs: Int) {
        var line = "\(report.path): \(Console.grouped(Double(pairs))) pairs"
        if report.badRows > 0 {
            line += ", \(report.badRows) malformed rows skipped"
        }
        Console.error(line)
        for problem in report.problems { Console.error("  \(report.path):\(problem.line): \(problem.message)") }
        if report.badRows > report.problems.count {
            Console.error("  ... and \(report.badRows - report.problems.count) more")
        }
    }

    static func training(_ event: TrainingEvent, epochs: Int) {
        switch event {
        case let .progress(epoch, batch, batches):
            if batch % 16 == 0 || batch == batches {
                Console.progress("epoch \(epoch + 1)/\(epochs)", done: batch, total: batches)
            }
        case let .speedometer(epoch, batch, samples, pairs, loss, accuracy):
            if Console.isTerminal { FileHandleOut.standardError.write("\r\u{1B}[K") }
            Console.error("Epoch[\(epoch)] Batch[\(batch)] Speed: \(Console.grouped(samples)) samples/s, \(Console.grouped(pairs)) pairs/s, cross_entropy=\(Console.fixed(loss, 4)) accuracy=\(Console.fixed(accuracy, 4))")
        case let .epochEnd(r):
            var line = "epoch \(r.epoch + 1)/\(epochs): cross_entropy=\(Console.fixed(r.loss, 4)) accuracy=\(Console.fixed(r.accuracy, 4)) " +
                "\(Console.grouped(r.pairsPerSecond)) pairs/s (\(Console.grouped(r.samplesPerSecond)) samples/s) \(Console.fixed(r.seconds, 1)) s"
            if let auc = r.validationAUC { line += " validation:discriminator_auc=\(Console.fixed(auc, 4))" }
            Console.error(line)
        }
    }
}
