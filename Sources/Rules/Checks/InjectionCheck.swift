#if canImport(Glibc)
import IPSightCore
import Glibc
#endif
import Dispatch
import Synchronization
import LogSources

/// The proof that client text cannot move an event: every rule file's wording
/// (each example's message, as written and with its addresses replaced by a
/// forged one) is put into every client-controlled slot of every example that
/// yields an event, and the event must come out unchanged.
///
/// A slot is client-controlled when the rule says so: a `<user>` or `<text>`
/// placeholder (of any class) or a structured field that gives the user. What goes
/// in is what the daemon could write there: cut to the slot's maximum length, and
/// for a slot of a narrower class (`<user:name>`), with other bytes made `_`.
/// The event may differ only in the user, which becomes the injected text. A line
/// that the injection made truly ambiguous (client text on both sides of the
/// daemon's, as in a certificate's key ID after a user name) may be refused instead:
/// it is counted, never read either way.
public enum InjectionCheck {
    public struct Report: Sendable {
        public var injections = 0
        /// Lines refused as ambiguous: allowed only for patterns with two client slots.
        public var refused = 0
        public var failures: [ExampleCheck.Failure] = []
    }

    /// The address every wording's own addresses are replaced with.
    public static let forgedIPv4 = "203.0.113.66"
    public static let forgedIPv6 = "2001:db8:66::66"

    public static func run(_ rules: RuleSet, maxFailures: Int = 50) -> Report {
        let rules = ExampleCheck.prepared(rules)
        let wordings = self.wordings(rules)
        let cases = rules.files.flatMap { file in
            file.examples.filter { $0.expect != nil }.map { (file: file, example: $0) }
        }
        // Millions of matches: the examples are shared out over the cores.
        let workers = max(1, min(8, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        let reports = Mutex([Report](repeating: Report(), count: workers))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var report = Report()
            for index in stride(from: worker, to: cases.count, by: workers) {
                check(cases[index].example, of: cases[index].file, rules, wordings, maxFailures, &report)
            }
            reports.withLock { $0[worker] = report }
        }
        return reports.withLock { parts in
            var total = Report()
            for part in parts {
                total.injections += part.injections
                total.refused += part.refused
                total.failures += part.failures.prefix(max(0, maxFailures - total.failures.count))
            }
            return total
        }
    }

    private static func check(_ example: Example, of file: RuleFile, _ rules: RuleSet, _ wordings: [String],
                              _ maxFailures: Int, _ report: inout Report) {
        guard let record = ExampleCheck.record(example) else { return }
        let explanation = rules.explain(record)
        guard case .event(let original) = explanation.result, let pattern = explanation.pattern else { return }
        for slot in slots(pattern, rules: rules, record: record) {
            for wording in wordings {
                guard let (message, injected) = slot.inject(wording, into: record.message) else { break }
                var altered = record
                altered.message = message
                report.injections += 1
                let result = rules.match(altered)
                var expected = original
                if slot.isUser { expected.user = injected }
                switch result {
                case .event(let event) where event == expected:
                    continue
                case .ambiguous where pattern.program.unique:
                    report.refused += 1
                    continue
                default:
                    guard report.failures.count < maxFailures else { continue }
                    let got: String
                    if case .event(let event) = result { got = EventJSON.line(event) } else { got = "\(result)" }
                    report.failures.append(ExampleCheck.Failure(
                        path: file.path, line: example.line,
                        message: "\(slot.name) ← \"\(injected)\": expected \(EventJSON.line(expected)), got \(got) from: \(message)"))
                }
            }
        }
    }

    /// Each example's message as written, and with its addresses replaced by forged ones.
    static func wordings(_ rules: RuleSet) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for file in rules.files {
            for example in file.examples {
                guard let record = ExampleCheck.record(example) else { continue }
                for text in [record.message, forged(record.message)] where seen.insert(text).inserted {
                    result.append(text)
                }
            }
        }
        return result
    }

    /// A message with every word that holds an address replaced by the forged address.
    static func forged(_ message: String) -> String {
        var words: [String] = []
        for word in message.split(separator: " ", omittingEmptySubsequences: false) {
            words.append(forged(word: word))
        }
        return words.joined(separator: " ")
    }

    private static func forged(word: Substring) -> String {
        // The longest run of address characters inside the word: an address, maybe with a port.
        let chars = Array(word.utf8)
        var best: Range<Int>?
        var i = 0
        while i < chars.count {
            guard ByteClass.contains(ByteClass.host, chars[i]) else { i += 1; continue }
            var j = i
            while j < chars.count, ByteClass.contains(ByteClass.host, chars[j]) { j += 1 }
            if j - i > (best?.count ?? 0) { best = i..<j }
            i = j
        }
        guard let run = best else { return String(word) }
        var text = String(decoding: chars[run], as: UTF8.self)
        var suffix = ""
        if IPAddress(text) == nil, let colon = text.lastIndex(of: ":"), IPAddress(String(text[..<colon])) != nil {
            suffix = String(text[colon...])
            text = String(text[..<colon])
        }
        guard let address = IPAddress(text) else { return String(word) }
        let replacement = (address.isIPv4 ? forgedIPv4 : forgedIPv6) + suffix
        return String(decoding: chars[..<run.lowerBound], as: UTF8.self) + replacement
            + String(decoding: chars[run.upperBound...], as: UTF8.self)
    }

    /// Where client text sits in a message, and how to put other text there.
    struct Slot {
        var name: String
        var isUser: Bool
        var make: (String, String) -> (message: String, injected: String)?

        func inject(_ wording: String, into message: String) -> (message: String, injected: String)? {
            make(wording, message)
        }
    }

    static func slots(_ pattern: Pattern, rules: RuleSet, record: LogRecord) -> [Slot] {
        var captures = Captures()
        var message = record.message
        let bytes = Array(message.utf8)
        guard message.withUTF8({ pattern.program.match(UnsafeRawBufferPointer($0), &captures) }) == .matched else { return [] }
        var result: [Slot] = []
        func op(_ field: UInt8) -> PatternProgram.Op? { pattern.program.ops.first { $0.field == field } }
        for (field, range, isUser) in [(UInt8(1), captures.user, true), (UInt8(6), captures.text, false)] {
            guard let range, let op = op(field) else { continue }
            let name = isUser ? "user" : "text"
            result.append(Slot(name: name, isUser: isUser) { wording, message in
                let text = fit(wording, op)
                let replaced = String(decoding: bytes[..<range.lowerBound], as: UTF8.self) + text
                    + String(decoding: bytes[range.upperBound...], as: UTF8.self)
                return (replaced, text)
            })
        }
        if let range = captures.structured, let kind = pattern.structured, let rule = rule(of: pattern, in: rules),
           let path = rule.fields?.user {
            result.append(Slot(name: "field \(path)", isUser: true) { wording, message in
                let prefix = String(decoding: bytes[..<range.lowerBound], as: UTF8.self)
                let part = Array(bytes[range])
                switch kind {
                case .json:
                    guard let document = try? JSONValue.parse(part),
                          let changed = replacing(path[...], in: document, with: wording) else { return nil }
                    return (prefix + JSONWriter.string(changed), wording)
                case .kv:
                    // Written as a quoting writer writes it.
                    var escaped = ""
                    for c in wording {
                        if c == "\"" || c == "\\" { escaped.append("\\") }
                        escaped.append(c)
                    }
                    guard let value = valueRange(of: path, in: part) else { return nil }
                    return (prefix + String(decoding: part[..<value.lowerBound], as: UTF8.self) + "\"" + escaped + "\""
                        + String(decoding: part[value.upperBound...], as: UTF8.self), wording)
                }
            })
        }
        return result
    }

    /// A JSON document with the string at `path` (dotted, as rules write it) replaced.
    static func replacing(_ path: Substring, in value: JSONValue, with text: String) -> JSONValue? {
        guard case .object(var members) = value else { return nil }
        if let index = members.firstIndex(where: { $0.0 == path }) {
            guard case .string = members[index].1 else { return nil }
            members[index].1 = .string(text)
            return .object(members)
        }
        guard let dot = path.firstIndex(of: "."),
              let index = members.firstIndex(where: { $0.0 == path[..<dot] }),
              let inner = replacing(path[path.index(after: dot)...], in: members[index].1, with: text) else { return nil }
        members[index].1 = inner
        return .object(members)
    }

    /// The rule a pattern belongs to.
    static func rule(of pattern: Pattern, in rules: RuleSet) -> Rule? {
        for file in rules.files {
            for rule in file.rules where rule.patterns.contains(where: { $0.pattern.program === pattern.program }) {
                return rule
            }
        }
        return nil
    }

    /// The byte range of `key`'s value (with its quotes) in key=value text.
    static func valueRange(of key: String, in text: [UInt8]) -> Range<Int>? {
        let needle = Array((key + "=").utf8)
        var i = 0
        while i + needle.count <= text.count {
            let atStart = i == 0 || text[i - 1] == UInt8(ascii: " ") || text[i - 1] == UInt8(ascii: ",")
            guard atStart, Array(text[i..<(i + needle.count)]) == needle else { i += 1; continue }
            let start = i + needle.count
            var end = start
            if end < text.count, text[end] == UInt8(ascii: "\"") {
                end += 1
                while end < text.count, text[end] != UInt8(ascii: "\"") { end += text[end] == UInt8(ascii: "\\") ? 2 : 1 }
                end = min(end + 1, text.count)
            } else {
                while end < text.count, text[end] != UInt8(ascii: " "), text[end] != UInt8(ascii: ",") { end += 1 }
            }
            return start..<end
        }
        return nil
    }

    /// The wording as the daemon could write it in the slot.
    static func fit(_ wording: String, _ op: PatternProgram.Op) -> String {
        // A pattern's space matches a run of spaces, so a slot's own edges cannot be told
        // from the daemon's spaces around it: inject without them.
        var bytes = Array(wording.utf8.drop(while: { $0 == UInt8(ascii: " ") }))
        while bytes.last == UInt8(ascii: " ") { bytes.removeLast() }
        if op.kind == .token {
            bytes = bytes.map { ByteClass.contains(op.cls, $0) ? $0 : UInt8(ascii: "_") }
            bytes = Array(bytes.prefix(Int(op.max)))
        } else if op.maxLength != Int.max, bytes.count > op.maxLength {
            var cut = op.maxLength
            while cut > 0, bytes[cut] & 0xC0 == 0x80 { cut -= 1 }
            bytes = Array(bytes[..<cut])
            while bytes.last == UInt8(ascii: " ") { bytes.removeLast() }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
