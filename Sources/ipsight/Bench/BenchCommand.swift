import Detection
import IPSightCore
import ArgumentParser
import Agent
import IPInsights
import IPInsightsFormats
#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training, model loading and batch scoring on simulated logins.",
        discussion: """
        DIR holds simulate.py's output (train.csv, test.csv). Training uses the IP Insights
        tutorial's hyperparameters; scoring reads a CSV file of at least a million pairs.
        The ./bench script at the top of the repository simulates the data and runs this.
        """
    )

    @Option(help: "Directory with train.csv and test.csv from simulate.py.") var data: String?
    @Option(help: ArgumentHelp("Instead: the agent's decisions on the scenarios benchmarks/scenarios.py wrote (history.csv, scenarios.csv); ./bench-scenarios runs it.", valueName: "dir"))
    var scenarios: String?
    @Option(help: "Training epochs to time.") var epochs: Int = 1
    @Option(help: "Worker threads.") var threads: Int = 2
    @Option(help: "Also keep the trained model here.") var model: String?
    @Option(help: ArgumentHelp("Optional routed-network table (first<TAB>last<TAB>asn rows, gzip allowed): training draws its random negatives from it, and the risk counts distances in it as with the agent's [risk] networks.", valueName: "file"))
    var networks: String?

    func validate() throws {
        if (data == nil) == (scenarios == nil) { throw ValidationError("give --data or --scenarios") }
    }

    func run() throws {
        if let scenarios {
            let table = try networks.map { path in try RoutedNetworksTable.read(path: path) }
            // --model: used when it exists, else trained on the history and kept there.
            let loaded = try model.flatMap { path in access(path, F_OK) == 0 ? try ModelFile.load(path: path) : nil }
            try ScenarioBench(directory: scenarios, model: loaded, keep: loaded == nil ? model : nil, epochs: max(epochs, 1),
                              threads: threads, networks: table).run()
            return
        }
        guard let data else { return }
        // Read first: a bad table should fail before minutes of training.
        let table = try networks.map { try RoutedNetworksFile.read(path: $0) }
        let (train, _) = try PairFile.read(path: "\(data)/train.csv")
        let hp = try Hyperparameters(strings: [
            "num_entity_vectors": "20000", "vector_dim": "128", "random_negative_sampling_rate": "5",
            "shuffled_negative_sampling_rate": "1", "mini_batch_size": "1000", "epochs": String(epochs),
            "learning_rate": "0.01",
        ])
        let trained = Model(hyperparameters: hp)
        trained.initialise(seed: 1)
        let trainer = Trainer(model: trained, seed: 1, threads: threads)
        if let table, let networks {
            trainer.randomNegatives = .routed(table)
            print(RandomNegativeOptions.describe(table, path: networks))
        }
        let reports = trainer.train(train.pairs)
        let seconds = reports.reduce(0) { $0 + $1.seconds }
        let pairsPerSecond = Double(train.pairs.count * epochs) / seconds
        print("training      \(Console.grouped(pairsPerSecond)) positive pairs/s, \(Console.grouped(reports.last!.samplesPerSecond)) samples/s (\(Console.grouped(Double(train.pairs.count))) pairs × \(epochs) epochs, \(threads) threads)")
        let phases = TrainingPhase.allCases.map { "\($0.rawValue) \(Console.fixed(1000 * (trainer.phaseSeconds[$0] ?? 0) / Double(reports.count * ((train.pairs.count + 999) / 1000)), 2))" }
        print("  per batch ms: " + phases.joined(separator: ", "))
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print("peak memory   \(Console.fixed(Double(usage.ru_maxrss) / 1024, 0)) MiB (training data, model, Adam state)")

        let path = model ?? "/tmp/ipsight-bench-\(getpid()).model"
        try ModelFile.save(trained, to: path)
        defer { if model == nil { unlink(path) } }
        var loads: [Double] = []
        var loaded: Model = trained
        for _ in 0..<5 {
            let t0 = Clock.now
            loaded = try ModelFile.load(path: path)
            loads.append(Clock.now - t0)
        }
        var st = stat()
        stat(path, &st)
        print("model load    \(Console.fixed(1000 * loads.min()!, 1)) ms (best of 5, \(Console.fixed(Double(st.st_size) / 1_048_576, 1)) MiB file, checksum verified)")

        // A CSV of at least a million pairs: the test set's pairs, repeated.
        let (test, _) = try PairFile.read(path: "\(data)/test.csv", labelled: true)
        let csvPath = "/tmp/ipsight-bench-\(getpid()).csv"
        defer { unlink(csvPath) }
        var csv: [UInt8] = []
        var rows = 0
        let names = try entityNames("\(data)/test.csv")
        while rows < 1_000_000 {
            for (k, ip) in test.pairs.ips.enumerated() {
                csv.append(contentsOf: names[k].utf8)
                csv.append(contentsOf: Array(",\(ip)\n".utf8))
            }
            rows += test.pairs.count
        }
        try AtomicFile.write(csv, to: csvPath)
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        var best = Double.infinity
        for _ in 0..<3 {
            let t0 = Clock.now
            let writer = PredictionWriter(model: loaded, format: ResponseFormat(kind: .jsonLines), threads: threads,
                                          output: FileHandleOut(fd: devNull, bufferSize: 1 << 16))
            let reader = try ByteLineReader(path: csvPath)
            try reader.forEachLine { line in
                try writer.addCSV(line.bytes, lineNumber: line.number)
                return true
            }
            try writer.finish()
            best = min(best, Clock.now - t0)
        }
        print("batch scoring \(Console.grouped(Double(rows) / best)) pairs/s (CSV file of \(Console.grouped(Double(rows))) pairs → JSON lines, read + parse + score + format, best of 3)")

        if let labels = test.labels {
            let entityRows = test.pairs.entityHashes.map { Int32($0 % UInt64(hp.numEntityVectors)) }
            let scores = BatchScorer(model: loaded, threads: threads).score(entityRows: entityRows, ips: test.pairs.ips)
            let anomaly = scores.map { -$0 }
            print("test quality  " + quality(anomaly, labels) + " (dot_product after \(epochs) epochs)")
            // The calibrated risk, fitted on the day after the training window.
            if let (validation, _) = try? PairFile.read(path: "\(data)/validation.csv") {
                let t0 = Clock.now
                let assessor = RiskAssessor(model: loaded, history: train.pairs, heldOut: validation.pairs, networks: table,
                                            threads: threads)
                let fitted = Clock.now - t0
                let risks = test.pairs.ips.indices.map {
                    Float(assessor.assess(entityHash: test.pairs.entityHashes[$0], ip: test.pairs.ips[$0], dotProduct: scores[$0]).logOdds)
                }
                let routed = table.map { ", \(Console.grouped(Double($0.count))) routed networks" } ?? ""
                print("risk quality  " + quality(risks, labels) + " (history and calibration built in \(Console.fixed(fitted, 1)) s\(routed))")
            }
        }
    }

    func quality(_ anomaly: [Float], _ labels: [Bool]) -> String {
        "AUC \(Console.fixed(Evaluation.auc(scores: anomaly, labels: labels), 4)), recall at 1% FPR \(Console.fixed(Evaluation.recall(atFalsePositiveRate: 0.01, anomalyScores: anomaly, labels: labels), 3)), at 0.1% FPR \(Console.fixed(Evaluation.recall(atFalsePositiveRate: 0.001, anomalyScores: anomaly, labels: labels), 3))"
    }

    func entityNames(_ path: String) throws -> [String] {
        var names: [String] = []
        try ByteLineReader(path: path).forEachLine { line in
            if let comma = line.bytes.firstIndex(of: UInt8(ascii: ",")) {
                names.append(String(decoding: UnsafeRawBufferPointer(rebasing: line.bytes[0..<comma]), as: UTF8.self))
            }
            return true
        }
        return names
    }
}
