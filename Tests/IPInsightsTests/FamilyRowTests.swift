import Testing
@testable import IPInsights

/// The family rows: one table row shared by every address of a family, learning at
/// `IPEncoderLayout.familyRowRate` times the others' rate.
@Suite struct FamilyRowTests {
    func tokens(_ text: String, _ layout: IPEncoderLayout) throws -> [Int32] {
        let ip = try #require(IPAddress(text))
        var buffer = [Int32](repeating: -1, count: IPEncoderLayout.maximumTokens)
        let n = buffer.withUnsafeMutableBufferPointer { layout.tokens(of: ip, into: $0.baseAddress!) }
        return Array(buffer[..<n])
    }

    @Test func everyAddressOfAFamilyUsesItsFamilyRow() throws {
        let layout = IPEncoderLayout(buckets: 1 << 16)
        let a = try tokens("198.51.100.1", layout), b = try tokens("23.1.2.3", layout)
        let v6 = try tokens("2001:db8::1", layout), other6 = try tokens("2a00:1450::5", layout)
        #expect(a.count == 10 && v6.count == IPEncoderLayout.maximumTokens)
        #expect(a[0] == b[0] && Int(a[0]) == layout.familyRow(ipv4: true))
        #expect(v6[0] == other6[0] && Int(v6[0]) == layout.familyRow(ipv4: false))
        #expect(a[0] != v6[0], "the families have a row each")
        #expect(Set(a[1...]).isDisjoint(with: [a[0], v6[0]]), "no other row is a family row")
        #expect(Int(v6[0]) == layout.rows - 1, "the family rows are the table's last two")

        // A model written before the family rows keeps its nine rows per IPv4 address.
        let old = IPEncoderLayout(buckets: 1 << 16, familyRows: false)
        #expect(try tokens("198.51.100.1", old) == Array(a[1...]))
        #expect(old.rows == layout.rows - 2)
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
        for familyRows in [false, true] {
            let model = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: 128, familyRows: familyRows))
            model.initialise(seed: 3)
            let bytes = ModelFile.encode(model)
            let header = String(decoding: bytes[16..<min(bytes.count, 600)], as: UTF8.self)
            #expect(header.contains("family_rows=1") == familyRows)
            let loaded = try bytes.withUnsafeBytes { buffer throws(ModelFileError) in try ModelFile.decode(buffer) }
            #expect(loaded.layout == model.layout)
            for text in ["192.0.2.7", "2001:db8::7"] {
                let ip = try #require(IPAddress(text))
                #expect(loaded.score(entity: "erin", ip: ip) == model.score(entity: "erin", ip: ip))
            }
        }
    }
}
