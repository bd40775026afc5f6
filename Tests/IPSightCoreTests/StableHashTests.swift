import Testing
@testable import IPSightCore

@Suite struct StableHashTests {
    // Published XXH64 test vectors (seed 0): the hash must equal the reference
    // algorithm, or models trained elsewhere would put entities in other rows.
    @Test func matchesReferenceVectors() {
        #expect(StableHash.xxh64("") == 0xEF46_DB37_51D8_E999)
        #expect(StableHash.xxh64("a") == 0xD24E_C4F1_A98C_6E5B)
        #expect(StableHash.xxh64("abc") == 0x44BC_2CF5_AD77_0999)
        #expect(StableHash.xxh64("Nobody inspects the spammish repetition") == 0xFBCE_A83C_8A37_8BF1)
    }

    @Test func longInputsUseAllStripes() {
        // 100 bytes cross the 32-byte stripe loop, the 8-, 4- and 1-byte tails.
        let text = String(repeating: "0123456789", count: 10)
        let whole = StableHash.xxh64(text)
        var changed = Array(text.utf8)
        for position in [0, 31, 32, 63, 95, 99] {
            changed[position] ^= 1
            let h = changed.withUnsafeBytes { StableHash.xxh64($0) }
            #expect(h != whole, "flipping byte \(position) must change the hash")
            changed[position] ^= 1
        }
    }

    @Test func seededRandomIsReproducible() {
        var a = SeededRandom(seed: 42), b = SeededRandom(seed: 42), c = SeededRandom(seed: 43)
        let sa = (0..<10).map { _ in a.next() }
        #expect(sa == (0..<10).map { _ in b.next() })
        #expect(sa != (0..<10).map { _ in c.next() })
        // below(n) covers 0..<n evenly: each of 7 values within 10% of its expected count.
        var r = SeededRandom(seed: 1)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[r.below(7)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 1_000 }, "\(counts)")
        let large = (0..<1000).map { _ in r.below(1 << 30) }
        #expect(Set(large).count > 990 && large.allSatisfy { $0 >= 0 && $0 < 1 << 30 })
        let units = (0..<10_000).map { _ in r.unit() }
        #expect(units.allSatisfy { $0 >= 0 && $0 < 1 } && abs(units.reduce(0, +) / 10_000 - 0.5) < 0.02)
    }
}
