import IPSightCore
import LogSources

/// What a rule set makes of a log file, for `ipsight rules test --file`: lines by
/// identifier, matched or not, and the commonest shapes of the unmatched ones (so
/// writing a rule for an in-house service starts from its most frequent lines).
public struct Coverage: Sendable {
    public struct Counts: Sendable {
        public var lines = 0
        public var matched = 0
        public var unmatched = 0
        public var untrusted = 0
        public var ambiguous = 0
        public var noRule = 0
    }

    public var lines = 0
    public var skipped = 0
    public var byIdentifier: [String: Counts] = [:]
    public var byRule: [String: Int] = [:]
    /// Unmatched shapes with their count and the first line of that shape.
    public var shapes: [String: (count: Int, example: String)] = [:]

    public init() {}

    public mutating func add(_ record: LogRecord, _ explanation: RuleSet.Explanation) {
        let identifier = record.identifier ?? "-"
        var counts = byIdentifier[identifier] ?? Counts()
        counts.lines += 1
        switch explanation.result {
        case .event(let event):
            counts.matched += 1
            byRule[event.rule, default: 0] += 1
        case .unmatched, .noRule:
            if case .noRule = explanation.result { counts.noRule += 1 } else { counts.unmatched += 1 }
            let shape = identifier + ": " + Self.shape(of: record.message)
            if let seen = shapes[shape] {
                shapes[shape] = (seen.count + 1, seen.example)
            } else if shapes.count < 100_000 {
                shapes[shape] = (1, record.message)
            }
        case .untrusted:
            counts.untrusted += 1
        case .ambiguous:
            counts.ambiguous += 1
        }
        byIdentifier[identifier] = counts
    }

    public func report(top: Int) -> String {
        var out = ""
        let matched = byIdentifier.values.reduce(0) { $0 + $1.matched }
        out += "lines \(lines), matched \(matched), skipped \(skipped) (too long or not text)\n"
        out += "identifier          lines  matched  unmatched  no rule  untrusted  ambiguous\n"
        for (identifier, c) in byIdentifier.sorted(by: { $0.value.lines > $1.value.lines }) {
            out += pad(identifier, 18) + pad(c.lines, 7) + pad(c.matched, 9) + pad(c.unmatched, 11)
                + pad(c.noRule, 9) + pad(c.untrusted, 11) + pad(c.ambiguous, 11) + "\n"
        }
        if !byRule.isEmpty {
            out += "events by rule:\n"
            for (rule, count) in byRule.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }) {
                out += "  " + pad(count, 8) + "  " + rule + "\n"
            }
        }
        if top > 0 && !shapes.isEmpty {
            out += "commonest unmatched shapes (<ip> address, <n> number, <id> token with digits, <q> quoted text):\n"
            for (shape, seen) in shapes.sorted(by: { ($0.value.count, $1.key) > ($1.value.count, $0.key) }).prefix(top) {
                out += "  " + pad(seen.count, 8) + "  " + shape + "\n"
                out += "            e.g. " + seen.example + "\n"
            }
        }
        return out
    }

    private func pad(_ value: Int, _ width: Int) -> String { pad(String(value), width, right: true) }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }

    /// A message with its variable parts replaced: addresses, numbers, tokens
    /// holding digits (ids, fingerprints, ports), and quoted or bracketed text.
    public static func shape(of message: String) -> String {
        var words: [String] = []
        for word in message.split(separator: " ", omittingEmptySubsequences: true).prefix(40) {
            words.append(shape(word: word))
        }
        return words.joined(separator: " ")
    }

    static func shape(word: Substring) -> String {
        var core = word
        var lead = ""
        var trail = ""
        let edges: Set<Character> = ["[", "]", "(", ")", "<", ">", "'", "\"", ",", ";", ":", "."]
        while let f = core.first, edges.contains(f) { lead.append(f); core = core.dropFirst() }
        while let l = core.last, edges.contains(l) { trail = String(l) + trail; core = core.dropLast() }
        if core.isEmpty { return String(word) }
        if lead.hasSuffix("'") || lead.hasSuffix("\"") { return lead + "<q>" + trail }
        var body = core
        if let eq = core.firstIndex(of: "="), eq != core.startIndex {
            // key=value: keep the key, shape the value.
            body = core[core.index(after: eq)...]
            let key = core[...eq]
            return lead + key + (body.isEmpty ? "" : shape(word: body)) + trail
        }
        if IPAddress(String(body)) != nil || IPAddress(String(body.split(separator: "%").first ?? "")) != nil {
            return lead + "<ip>" + trail
        }
        if let colon = body.lastIndex(of: ":"), IPAddress(String(body[..<colon])) != nil {
            return lead + "<ip>:<n>" + trail
        }
        if body.allSatisfy(\.isNumber) { return lead + "<n>" + trail }
        if body.contains(where: \.isNumber) { return lead + "<id>" + trail }
        return String(word)
    }
}
