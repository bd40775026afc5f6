import IPSightCore
import Glibc

/// Which journal entries the rules want: match alternatives (each a list of
/// `FIELD=value` terms that must all hold; values of one field are
/// alternatives, as in sd-journal), decided on the reading thread from the
/// fields it copies anyway.
///
/// Not sd-journal's own matches: with one term per service (well over a hundred
/// for every rule file) sd-journal tries each term's index at every step, and
/// reading cost grew with each rule file added (16 s of CPU for a million sshd
/// entries with 120 terms, 4 s unfiltered). Here a term costs a hash lookup of
/// the few fields that terms name, whatever their number.
struct JournalFilter {
    /// The field names the terms use, with their `=`.
    let names: [[UInt8]]
    /// Alternatives of one term: by the hash of (field, value).
    private var single: [UInt64: [(field: Int, value: [UInt8])]] = [:]
    /// Alternatives of several terms: per field, the values allowed.
    private var compound: [[(field: Int, values: [[UInt8]])]] = []

    /// Everything passes when there are no alternatives.
    let passesEverything: Bool

    /// - Parameter alternatives: `FIELD=value` terms; a term without `=` is refused.
    init(_ alternatives: [[String]]) throws(SourceError) {
        var names: [[UInt8]] = []
        func field(_ name: Substring) -> Int {
            let bytes = Array((name + "=").utf8)
            if let index = names.firstIndex(of: bytes) { return index }
            names.append(bytes)
            return names.count - 1
        }
        var single: [UInt64: [(field: Int, value: [UInt8])]] = [:]
        var compound: [[(field: Int, values: [[UInt8]])]] = []
        for alternative in alternatives where !alternative.isEmpty {
            var groups: [(field: Int, values: [[UInt8]])] = []
            for term in alternative {
                guard let equals = term.firstIndex(of: "="), equals != term.startIndex else {
                    throw SourceError.journal(operation: "match \(term): expected FIELD=value", code: -EINVAL)
                }
                let f = field(term[..<equals])
                let value = Array(term[term.index(after: equals)...].utf8)
                if let g = groups.firstIndex(where: { $0.field == f }) { groups[g].values.append(value) } else {
                    groups.append((f, [value]))
                }
            }
            if groups.count == 1 {
                for value in groups[0].values {
                    single[Self.key(groups[0].field, value), default: []].append((groups[0].field, value))
                }
            } else {
                compound.append(groups)
            }
        }
        self.names = names
        self.single = single
        self.compound = compound
        passesEverything = alternatives.allSatisfy(\.isEmpty)
    }

    private static func key(_ field: Int, _ value: [UInt8]) -> UInt64 {
        value.withUnsafeBytes { key(field, $0) }
    }

    private static func key(_ field: Int, _ value: UnsafeRawBufferPointer) -> UInt64 {
        StableHash.xxh64(value, seed: UInt64(field))
    }

    /// Whether an entry passes, given its value of each of `names` (nil: absent).
    func passes(_ value: (Int) -> UnsafeRawBufferPointer?) -> Bool {
        if passesEverything { return true }
        for field in names.indices {
            guard let bytes = value(field), let candidates = single[Self.key(field, bytes)] else { continue }
            for candidate in candidates where candidate.field == field && Self.equal(candidate.value, bytes) { return true }
        }
        return compound.contains { groups in
            groups.allSatisfy { group in
                guard let bytes = value(group.field) else { return false }
                return group.values.contains { Self.equal($0, bytes) }
            }
        }
    }

    private static func equal(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return a.isEmpty || a.withUnsafeBytes { memcmp($0.baseAddress!, b.baseAddress!, a.count) == 0 }
    }
}
