import IPSightCore
import Testing
@testable import IPInsights

/// The family rows: one table row shared by every address of a family, counted
/// `IPEncoderLayout.familyWeight` times in the address's sum.
@Suite struct FamilyRowTests {
    /// The table rows `layout` lists for the address `text` (also used by `IPAddressTests`).
    static func tokens(_ text: String, _ layout: IPEncoderLayout) throws -> [Int32] {
        let ip = try #require(IPAddress(text))
        var buffer = [Int32](repeating: -1, count: IPEncoderLayout.maximumTokens)
        let n = buffer.withUnsafeMutableBufferPointer { layout.tokens(of: ip, into: $0.baseAddress!) }
        return Array(buffer[..<n])
    }

    @Test func everyAddressOfAFamilyUsesItsFamilyRow() throws {
        let layout = IPEncoderLayout(buckets: 1 << 16)
        let w = IPEncoderLayout.defaultFamilyWeight
        let a = try Self.tokens("198.51.100.1", layout), b = try Self.tokens("23.1.2.3", layout)
        let v6 = try Self.tokens("2001:db8::1", layout), other6 = try Self.tokens("2a00:1450::5", layout)
        #expect(w > 1 && a.count == w + 9 && v6.count == w + 7 + 16)
        #expect(a[0] == b[0] && Int(a[0]) == layout.familyRow(ipv4: true))
        #expect(v6[0] == other6[0] && Int(v6[0]) == layout.familyRow(ipv4: false))
        #expect(a[0] != v6[0], "the families have a row each")
        #expect(a.prefix(w).allSatisfy { $0 == a[0] } && v6.prefix(w).allSatisfy { $0 == v6[0] },
                "the family row is listed once per count, so the sum holds it w times")
        #expect(Set(a[w...]).isDisjoint(with: [a[0], v6[0]]), "no other row is a family row")
        #expect(Int(v6[0]) == layout.rows - 1, "the family rows are the table's last two")

        // A model written before the family rows keeps its nine rows per IPv4 address;
        // one written when the row counted once lists it once.
        let old = IPEncoderLayout(buckets: 1 << 16, familyWeight: 0)
        #expect(try Self.tokens("198.51.100.1", old) == Array(a[w...]))
        #expect(old.rows == layout.rows - 2)
        let once = IPEncoderLayout(buckets: 1 << 16, familyWeight: 1)
        #expect(try Self.tokens("198.51.100.1", once) == Array(a[(w - 1)...]))
        #expect(once.rows == layout.rows)
    }

    @Test func theFamilyRowWeighsInTheEmbeddingAsOftenAsItIsCounted() throws {
        // The same trained tables under weights 1 and 4: the IP embeddings before the
        // layers differ by exactly three times the family row.
        var hp = Hyperparameters(numEntityVectors: 20, vectorDim: 8)
        hp.numIPEncoderLayers = 0
        hp = try hp.validated()
        let four = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: 128, familyWeight: 4), activityPrior: false)
        four.initialise(seed: 5)
        let one = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: 128, familyWeight: 1), activityPrior: false)
        one.ipTable.pointer.update(from: four.ipTable.pointer, count: four.ipTable.count)
        let ip = try #require(IPAddress("198.51.100.1"))
        let family = four.ipTable.pointer + four.layout.familyRow(ipv4: true) * four.dimension
        let e4 = four.ipEmbedding(ip), e1 = one.ipEmbedding(ip)
        for j in 0..<8 { #expect(abs(e4[j] - e1[j] - 3 * family[j]) < 1e-5) }
    }

    @Test func entitiesThatTravelScoreNewNetworksHigher() throws {
        // Ten entities stay in their own /24; ten others log in from a random
        // address one time in three. A network none of them has used should score
        // higher for the travellers. This is the behaviour the family row is for; a
        // model without the row passes too, so it guards the behaviour, not the row.
        var rng = SeededRandom(seed: 21)
        var pairs = TrainingPairs()
        for _ in 0..<6_000 {
            let user = rng.below(20)
            let travels = user % 2 == 1 && rng.below(3) == 0
            let ip = travels ? IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next()))
                             : IPAddress(ipv4: UInt32(10 << 24 | user << 8 | rng.below(256)))
            pairs.append(entity: "user\(user)", ip: ip)
        }
        let model = try IterateAverageTests.model(epochs: 4, miniBatchSize: 200, randomNegatives: 3, seed: 8)
        _ = Trainer(model: model, seed: 4, threads: 1).train(pairs)

        var higher = 0
        let fresh = 300
        for _ in 0..<fresh {
            let ip = IPAddress(ipv4: UInt32(100 << 24) | UInt32(rng.below(1 << 24)))
            let scores = (0..<20).map { model.score(entity: "user\($0)", ip: ip) }
            let travellers = stride(from: 1, to: 20, by: 2).map { scores[$0] }.reduce(0, +)
            let homebodies = stride(from: 0, to: 20, by: 2).map { scores[$0] }.reduce(0, +)
            if travellers > homebodies { higher += 1 }
        }
        #expect(higher > fresh * 9 / 10, "travellers scored higher on \(higher) of \(fresh) new addresses")
    }

    @Test func modelsWithoutFamilyRowsLoadAndScoreAsBefore() throws {
        let hp = try Hyperparameters(numEntityVectors: 20, vectorDim: 8).validated()
        for weight in [0, 1, IPEncoderLayout.defaultFamilyWeight] {
            let model = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: 128, familyWeight: weight))
            model.initialise(seed: 3)
            let bytes = ModelFile.encode(model)
            let header = String(decoding: bytes[16..<min(bytes.count, 600)], as: UTF8.self)
            #expect(header.contains("family_rows=") == (weight > 0))
            #expect(header.contains("family_rows=\(weight)\n") == (weight > 0))
            let loaded = try bytes.withUnsafeBytes { buffer throws(ModelFileError) in try ModelFile.decode(buffer) }
            #expect(loaded.layout == model.layout)
            for text in ["192.0.2.7", "2001:db8::7"] {
                let ip = try #require(IPAddress(text))
                #expect(loaded.score(entity: "erin", ip: ip) == model.score(entity: "erin", ip: ip))
            }
        }
    }

    @Test func aFamilyWeightOutOfRangeIsRefused() throws {
        let hp = try Hyperparameters(numEntityVectors: 20, vectorDim: 8).validated()
        let model = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: 128, familyWeight: 4))
        model.initialise(seed: 3)
        let bytes = try ModelFileTests.patched(ModelFile.encode(model), replacing: "family_rows=4", with: "family_rows=9")
        #expect(ModelFileTests.decodeError(bytes)?.contains("family_rows '9'") == true)
    }
}
