import Testing
import IPInsightsFormats
@testable import IPInsights
import Glibc

/// Where the benchmark tools live: `shared/` beside the repository checkout.
enum SharedTools {
    static var directory: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }   // Tests/IPInsightsTests/file
        return String(path[..<path.lastIndex(of: "/")!]) + "/shared"
    }

    /// Runs simulate.py into a fresh directory and returns it.
    static func simulate(users: Int, seed: Int, extra: String = "") throws -> String {
        let out = "/tmp/ipsight-sim-\(getpid())-\(users)-\(seed)"
        let script = "\(directory)/bench/simulate.py"
        guard access(script, R_OK) == 0 else { throw SimulationError(message: "\(script) not found: shared/ must sit beside the repository") }
        let status = system("python3 \(script) --users \(users) --seed \(seed) --test-samples 3000 \(extra) --out \(out) > /dev/null")
        guard status == 0 else { throw SimulationError(message: "simulate.py exited with \(status)") }
        return out
    }

    struct SimulationError: Error { var message: String }
}

@Suite(.serialized) struct TrainingIntegrationTests {
    static func hyperparameters() throws -> Hyperparameters {
        try Hyperparameters(strings: [
            "num_entity_vectors": "600", "vector_dim": "32", "epochs": "6", "learning_rate": "0.01",
            "mini_batch_size": "500", "random_negative_sampling_rate": "5", "shuffled_negative_sampling_rate": "1",
        ])
    }

    @Test func learnsWhereUsersLogInFrom() throws {
        let dir = try SharedTools.simulate(users: 300, seed: 7)
        defer { _ = system("rm -rf \(dir)") }
        let (train, _) = try PairFile.read(path: "\(dir)/train.csv")
        let (validation, _) = try PairFile.read(path: "\(dir)/validation.csv")
        let (test, _) = try PairFile.read(path: "\(dir)/test.csv", labelled: true)
        let labels = try #require(test.labels)
        #expect(train.pairs.count > 10_000)

        let model = Model(hyperparameters: try Self.hyperparameters())
        model.initialise(seed: 1)
        let before = Evaluation.discriminatorAUC(model: model, pairs: validation.pairs)
        let reports = Trainer(model: model, seed: 1).train(train.pairs, validation: validation.pairs)
        #expect(reports.count == 6)
        #expect(reports.last!.loss < reports.first!.loss, "cross entropy falls")
        let validationAUC = try #require(reports.last?.validationAUC)
        #expect(before < 0.7, "an untrained model is near chance (\(before))")
        #expect(validationAUC > 0.95, "validation:discriminator_auc \(validationAUC)")

        // The labelled test set: normal logins against attacks from random networks.
        let rows = test.pairs.entityHashes.map { Int32($0 % 600) }
        let scores = BatchScorer(model: model).score(entityRows: rows, ips: test.pairs.ips)
        let auc = Evaluation.auc(scores: scores.map { -$0 }, labels: labels)
        #expect(auc > 0.93, "test AUC \(auc)")
    }

    @Test func sameSeedSameModelAndWarmStartContinues() throws {
        let dir = try SharedTools.simulate(users: 120, seed: 3)
        defer { _ = system("rm -rf \(dir)") }
        let (train, _) = try PairFile.read(path: "\(dir)/train.csv")
        let (validation, _) = try PairFile.read(path: "\(dir)/validation.csv")
        var hp = try Self.hyperparameters()
        hp.epochs = 2
        func trained(seed: UInt64) -> Model {
            let model = Model(hyperparameters: hp)
            model.initialise(seed: seed)
            _ = Trainer(model: model, seed: seed).train(train.pairs)
            return model
        }
        let a = ModelFile.encode(trained(seed: 5)), b = ModelFile.encode(trained(seed: 5)), c = ModelFile.encode(trained(seed: 6))
        // Compared as booleans: a failed `#expect(a == b)` on megabytes would make the
        // test runner compute a diff for hours.
        let reproducible = a == b, seedMatters = a != c
        #expect(reproducible, "a seed makes a run reproducible")
        #expect(seedMatters)

        // Warm start: continue from the saved model; validation AUC does not fall back
        // to an untrained model's, and the history adds up.
        let first = try a.withUnsafeBytes { buffer throws(ModelFileError) in try ModelFile.decode(buffer) }
        let aucBefore = Evaluation.discriminatorAUC(model: first, pairs: validation.pairs)
        _ = Trainer(model: first, seed: 8).train(validation.pairs)
        let aucAfter = Evaluation.discriminatorAUC(model: first, pairs: validation.pairs)
        #expect(first.trainedEpochs == 4)
        #expect(first.trainedPairs == 2 * train.pairs.count + 2 * validation.pairs.count)
        #expect(aucAfter >= aucBefore - 0.01, "warm start kept what it knew (\(aucBefore) → \(aucAfter))")
    }
}
