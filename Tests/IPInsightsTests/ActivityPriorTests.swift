import IPSightCore
import Testing
@testable import IPInsights
import Glibc

/// The activity prior: the last dimension carries log((logins + 1) / typical), so
/// that the dot product is the log odds against a takeover of any account.
@Suite struct ActivityPriorTests {
    static func model(activityPrior: Bool = true, epochs: Int = 2) throws -> Model {
        var hp = Hyperparameters(numEntityVectors: 64, vectorDim: 8)
        hp.epochs = epochs
        hp.miniBatchSize = 50
        hp.learningRate = 0.02
        let model = Model(hyperparameters: try hp.validated(), layout: IPEncoderLayout(buckets: 256),
                          activityPrior: activityPrior)
        model.initialise(seed: 9)
        return model
    }

    /// `logins[k]` logins for entity k, each from its own /24.
    static func pairs(logins: [Int]) -> TrainingPairs {
        var pairs = TrainingPairs()
        for (k, n) in logins.enumerated() {
            for i in 0..<n { pairs.append(entity: "user\(k)", ip: IPAddress(ipv4: UInt32(10 << 24 | k << 8 | i % 256))) }
        }
        return pairs
    }

    @Test func thePriorIsTheLogOfLoginsCentredOnTheTypicalEntity() throws {
        let model = try Self.model()
        let rows = (0..<3).map { model.entityRow("user\($0)") }
        #expect(Set(rows).count == 3, "the test needs three distinct rows")
        #expect(rows.allSatisfy { model.activityPrior(row: $0) == 0 }, "a fresh model has no prior")
        model.recordLogins(Self.pairs(logins: [9, 3, 0]))
        let typical = (log(10.0) + log(4.0)) / 2
        #expect(abs(Double(model.activityPrior(row: rows[0])) - (log(10) - typical)) < 1e-5)
        #expect(abs(Double(model.activityPrior(row: rows[1])) - (log(4) - typical)) < 1e-5)
        #expect(abs(Double(model.activityPrior(row: rows[2])) + typical) < 1e-5, "no logins: log(1) - typical")
        // A warm start adds its logins to the model's.
        model.recordLogins(Self.pairs(logins: [9, 3, 0]))
        #expect(model.logins![rows[0]] == 18 && model.logins![rows[1]] == 6)
        let typical2 = (log(19.0) + log(7.0)) / 2
        #expect(abs(Double(model.activityPrior(row: rows[0])) - (log(19) - typical2)) < 1e-5)
    }

    @Test func theScoreIsTheDotProductOfTheEmbeddingsPriorIncluded() throws {
        let model = try Self.model()
        model.recordLogins(Self.pairs(logins: [40, 2]))
        let busy = model.entityRow("user0"), quiet = model.entityRow("user1")
        // The same learnt vector for both: only the prior tells them apart.
        let d = model.dimension
        model.entityVector(row: quiet).update(from: model.entityVector(row: busy), count: d - 1)
        let ip = try #require(IPAddress("203.0.113.9"))
        let v = model.ipEmbedding(ip)
        #expect(v[d - 1] == 1)
        for entity in ["user0", "user1"] {
            let e = model.entityEmbedding(entity)
            let dot = zip(e, v).map { Double($0 * $1) }.reduce(0, +)
            #expect(abs(Double(model.score(entity: entity, ip: ip)) - dot) < 1e-4)
        }
        let gap = model.score(entity: "user0", ip: ip) - model.score(entity: "user1", ip: ip)
        #expect(abs(Double(gap) - log(41.0 / 3.0)) < 1e-4, "the busy account is log(41/3) more likely its owner")
    }

    @Test func trainingLearnsTheOtherDimensionsAndWritesThePriorAtTheEnd() throws {
        let model = try Self.model(epochs: 3)
        let pairs = Self.pairs(logins: [300, 60, 12])
        let trainer = Trainer(model: model, seed: 2, threads: 1)
        // During training the prior channel takes no gradient on either side.
        let gradients = trainer.gradients(pairs, indices: Array(0..<50))
        #expect(!gradients.entityRows.isEmpty)
        for (_, g) in gradients.entityRows { #expect(g[model.dimension - 1] == 0) }
        var epochsWithoutPrior = 0
        _ = trainer.train(pairs) { event in
            if case .epochEnd = event, (0..<3).allSatisfy({ model.activityPrior(row: model.entityRow("user\($0)")) == 0 }) {
                epochsWithoutPrior += 1
            }
        }
        #expect(epochsWithoutPrior == 3)
        let priors = (0..<3).map { Double(model.activityPrior(row: model.entityRow("user\($0)"))) }
        let typical = (log(301.0) + log(61.0) + log(13.0)) / 3
        #expect(abs(priors[0] - (log(301) - typical)) < 1e-4 && abs(priors[2] - (log(13) - typical)) < 1e-4)
    }

    @Test func aWarmStartCopyKeepsTheLoginsAndLeavesTheOriginalAlone() throws {
        let model = try Self.model()
        let pairs = Self.pairs(logins: [30, 4])
        model.recordLogins(pairs)
        let before = ModelFile.tensorList(model).map(\.1.array)
        let copy = model.copy()
        #expect(ModelFile.tensorList(copy).map(\.1.array) == before)
        _ = Trainer(model: copy, seed: 1, threads: 1).train(pairs)
        #expect(ModelFile.tensorList(model).map(\.1.array) == before, "training the copy changed the original")
        #expect(copy.logins![copy.entityRow("user0")] == 60, "the copy's warm start adds to the copied counts")
    }

    @Test func theDiscriminatorMetricLeavesThePriorOut() throws {
        // The spec's metric compares each pair with a negative of the same entity:
        // shifting one entity's scores must not change it.
        let model = try Self.model(epochs: 10)
        let pairs = Self.pairs(logins: [200, 5, 80])
        _ = Trainer(model: model, seed: 3, threads: 1).train(pairs)
        let before = Evaluation.discriminatorAUC(model: model, pairs: pairs, threads: 1)
        let row = model.entityRow("user1")
        model.entityTable[row * model.dimension + model.dimension - 1] += 50
        #expect(Evaluation.discriminatorAUC(model: model, pairs: pairs, threads: 1) == before)
        #expect(before > 0.7)
    }

    @Test func theFileKeepsTheLoginsAndOldModelsScoreAsBefore() throws {
        for prior in [true, false] {
            let model = try Self.model(activityPrior: prior)
            model.recordLogins(Self.pairs(logins: [7, 1]))
            let bytes = ModelFile.encode(model)
            let header = String(decoding: bytes[16..<min(bytes.count, 700)], as: UTF8.self)
            #expect(header.contains("activity_prior=1\n") == prior)
            let loaded = try bytes.withUnsafeBytes { buffer throws(ModelFileError) in try ModelFile.decode(buffer) }
            #expect(loaded.hasActivityPrior == prior)
            #expect(loaded.logins?.array == model.logins?.array)
            let ip = try #require(IPAddress("198.51.100.4"))
            #expect(loaded.score(entity: "user0", ip: ip) == model.score(entity: "user0", ip: ip))
            if !prior {
                // Without the prior every dimension is learnt: the encoder's last output is its own.
                #expect(loaded.ipEmbedding(ip)[model.dimension - 1] != 1)
            }
        }
    }

    @Test func aBadPriorFieldOrLoginCountIsRefused() throws {
        let model = try Self.model()
        model.recordLogins(Self.pairs(logins: [7, 1]))
        let bytes = ModelFile.encode(model)
        let field = try ModelFileTests.patched(bytes, replacing: "activity_prior=1", with: "activity_prior=7")
        #expect(ModelFileTests.decodeError(field)?.contains("activity_prior '7'") == true)
        // The login counts are the file's last tensor: a negative count is refused.
        var negative = bytes
        let at = bytes.count - 8 - 4 * model.hyperparameters.numEntityVectors
        withUnsafeBytes(of: Float(-3).bitPattern.littleEndian) { for k in 0..<4 { negative[at + k] = $0[k] } }
        ModelFileTests.resum(&negative)
        #expect(ModelFileTests.decodeError(negative)?.contains("entity row 0 has an invalid login count -3") == true)
    }
}
