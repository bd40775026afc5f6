import IPSightCore
import Testing
@testable import IPInsights

/// The model's rows for an entity and an address: stable, in range, shared with
/// neighbours but never all of them.
@Suite struct AddressTokenTests {
    @Test func entityRowsAreStableAndInRange() {
        let model = Model(hyperparameters: Hyperparameters(numEntityVectors: 20000, vectorDim: 4))
        // Row = xxh64 mod num_entity_vectors, whatever process computes it.
        #expect(model.entityRow("user_1") == Int(StableHash.xxh64("user_1") % 20000))
        for name in ["", "alice", "Ünïcödé", String(repeating: "x", count: 1000)] {
            let row = model.entityRow(name)
            #expect(row >= 0 && row < 20000)
            #expect(row == model.entityRow(name))
        }
    }

    @Test func everyAddressHasItsOwnTokens() throws {
        // Neighbours share coarse prefix rows but never the full set of rows.
        let layout = IPEncoderLayout(buckets: 1 << 16)
        func tokens(_ text: String) throws -> [Int32] { try FamilyRowTests.tokens(text, layout) }
        let a = try tokens("198.51.100.1"), b = try tokens("198.51.100.2"), c = try tokens("198.51.101.1")
        // The family row (counted w times), five prefix rows, four byte rows.
        let w = layout.familyWeight
        #expect(a.count == w + 9 && b.count == w + 9)
        #expect(a[0..<(w + 5)] == b[0..<(w + 5)], "same /24: same family and prefix rows")
        #expect(a != b, "different addresses: different byte rows")
        #expect(a[0..<(w + 4)] == c[0..<(w + 4)] && a[w + 4] != c[w + 4], "same /20, different /24")
        let v6 = try tokens("2001:db8::1")
        #expect(v6.count == w + 7 + 16 && v6.count <= IPEncoderLayout.maximumTokens)
        #expect(v6.allSatisfy { $0 >= 0 && Int($0) < layout.rows })
    }
}
