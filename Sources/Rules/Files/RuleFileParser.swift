import IPSightCore
import LogSources

/// Reads the rule file format:
///
/// ```
/// # comment
/// service     = sshd
/// identifiers = sshd sshd-session
/// journal     = _SYSTEMD_UNIT=ssh.service
/// trusted     = _UID=0 _COMM=sshd|sshd-session
///
/// [accepted]
/// outcome = success
/// match   = Accepted <method> for <user> from <host> port <port> ssh2
/// example = Nov  4 10:00:00 h sshd[1]: Accepted password for alice from 192.0.2.1 port 2222 ssh2
/// expect  = outcome=success user=alice ip=192.0.2.1 port=2222 method=password
/// ```
///
/// Keys before the first section describe the service; each `[name]` section is
/// a rule, except `[examples]`, which holds only examples. `example` lines are
/// whole log lines; the `expect` after each gives the fields the line must yield
/// (`nothing` for none; quote values with spaces; `-` for an absent field).
public enum RuleFileParser {
    public static func parse(_ text: String, path: String) throws(RuleFileError) -> RuleFile {
        var file = RuleFile(path: path, service: "")
        var current: Rule?
        var inExamples = false
        var pendingExample: (text: String, line: Int, file: Bool)?
        var sawService = false

        func fail(_ line: Int, _ message: String) -> RuleFileError {
            RuleFileError(path: path, line: line, message: message)
        }
        func finishRule(_ line: Int) throws(RuleFileError) {
            guard let rule = current else { return }
            if rule.patterns.isEmpty {
                throw fail(rule.line, "rule [\(rule.name)] has no match line")
            }
            if rule.outcome == nil && rule.fields?.outcome == nil {
                throw fail(rule.line, "rule [\(rule.name)] needs an outcome (success or failure)")
            }
            let structured = rule.patterns.contains { $0.pattern.structured != nil }
            if !structured && (rule.fields != nil || !rule.conditions.isEmpty || !rule.fieldMatches.isEmpty) {
                throw fail(rule.line, "rule [\(rule.name)] uses fields, when or field-match, but no pattern ends in <json> or <kv>")
            }
            file.rules.append(rule)
            current = nil
        }

        let lines: [(line: Int, INIText.Line)]
        do { lines = try INIText.lines(text, inlineComments: false) } catch { throw fail(error.line, error.message) }
        for (number, line) in lines {
            let key: String, value: String
            switch line {
            case .section(let name):
                if let pending = pendingExample { throw fail(pending.line, "example without an expect line") }
                try finishRule(number)
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                    throw fail(number, "a rule name uses letters, digits, '-' and '_'")
                }
                guard sawService else { throw fail(number, "the file must name its service before the first section") }
                if name == "examples" {
                    inExamples = true
                } else {
                    if file.rules.contains(where: { $0.name == name }) { throw fail(number, "rule [\(name)] is defined twice") }
                    inExamples = false
                    current = Rule(name: name, qualifiedName: "\(file.service)/\(name)", line: number)
                }
                continue
            case .entry(let k, let v):
                key = k
                value = v
            }
            if pendingExample != nil && key != "expect" { throw fail(number, "an example must be followed by its expect line") }

            switch key {
            case "example", "file-example":
                pendingExample = (value, number, key == "file-example")
                continue
            case "expect":
                guard let pending = pendingExample else { throw fail(number, "expect without an example line before it") }
                pendingExample = nil
                let expectation: [String: String]?
                do { expectation = try parseExpect(value) } catch { throw fail(number, error.message) }
                if let e = expectation {
                    for required in ["outcome", "user", "ip"] where e[required] == nil {
                        throw fail(number, "an expect line must state \(required) (write \(required)=- when absent)")
                    }
                }
                var example = Example(text: pending.text, expect: expectation, line: pending.line, path: path)
                if pending.file {
                    guard let identifier = file.identifiers.first(where: { $0 != "-" && $0 != "*" }) else {
                        throw fail(pending.line, "a file-example needs an identifier (list one in identifiers)")
                    }
                    example.identifier = identifier
                }
                file.examples.append(example)
                continue
            default: break
            }

            if current == nil && !inExamples {
                switch key {
                case "service":
                    guard !value.isEmpty, !value.contains(" ") else { throw fail(number, "service is one word") }
                    file.service = value
                    sawService = true
                case "identifiers":
                    file.identifiers += value.split(separator: " ").map(String.init)
                case "journal":
                    var alternative: [RuleFile.JournalTerm] = []
                    for term in value.split(separator: " ") {
                        guard let e = term.firstIndex(of: "="), e != term.startIndex else {
                            throw fail(number, "a journal match is FIELD=value")
                        }
                        let field = String(term[..<e])
                        guard field.allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }) else {
                            throw fail(number, "journal field names are upper case: \(field)")
                        }
                        alternative.append(.init(field: field, value: String(term[term.index(after: e)...])))
                    }
                    guard !alternative.isEmpty else { throw fail(number, "empty journal match") }
                    file.journalMatches.append(alternative)
                case "trusted":
                    var alternative: [RuleFile.TrustedTerm] = []
                    for term in value.split(separator: " ") {
                        guard let e = term.firstIndex(of: "=") else { throw fail(number, "a condition is FIELD=value|value") }
                        let field = String(term[..<e])
                        guard TrustedFields.names.contains(field) else {
                            throw fail(number, "\(field) is not a trusted field; use one of \(TrustedFields.names.joined(separator: ", "))")
                        }
                        let values = term[term.index(after: e)...].split(separator: "|").map(String.init)
                        guard !values.isEmpty else { throw fail(number, "\(field) needs a value") }
                        alternative.append(.init(field: field, values: values))
                    }
                    guard !alternative.isEmpty else { throw fail(number, "empty trusted condition") }
                    file.trusted.append(alternative)
                default:
                    throw fail(number, "unknown key '\(key)' (service, identifiers, journal, trusted)")
                }
                continue
            }
            guard var rule = current else { throw fail(number, "only example and expect lines belong in [examples]") }
            switch key {
            case "outcome":
                guard let o = LoginEvent.Outcome(rawValue: value) else { throw fail(number, "outcome is success or failure") }
                rule.outcome = o
            case "match":
                let pattern: Pattern
                do { pattern = try Pattern(value) } catch { throw fail(number, "pattern \(error.description)") }
                rule.patterns.append((pattern, number))
                if pattern.structured != nil && rule.fields == nil { rule.fields = FieldMap() }
            case "method":
                rule.method = value
            case "user":
                guard !value.isEmpty else { throw fail(number, "user needs a value") }
                rule.user = value
            case "optional":
                for field in value.split(separator: " ") {
                    guard field == "user" else { throw fail(number, "only user can be optional (addresses always are)") }
                    rule.userOptional = true
                }
            case "absent":
                rule.absent += value.split(separator: " ").map(String.init)
            case "type":
                guard let kind = StructuredKind(rawValue: value) else { throw fail(number, "type is json or kv") }
                // The whole message is one JSON object or one list of key=value pairs.
                let pattern: Pattern
                do { pattern = try Pattern("<\(kind.rawValue)>") } catch { throw fail(number, "\(error)") }
                rule.patterns.append((pattern, number))
                if rule.fields == nil { rule.fields = kind == .json ? .jsonDefaults : FieldMap() }
            case "user-field", "ip-field", "time-field", "port-field", "method-field", "outcome-field",
                 "success-values", "failure-values":
                var fields = rule.fields ?? FieldMap()
                let path: String? = value == "-" ? nil : value
                switch key {
                case "user-field": fields.user = path
                case "ip-field": fields.ip = path
                case "time-field": fields.time = path
                case "port-field": fields.port = path
                case "method-field": fields.method = path
                case "outcome-field": fields.outcome = path
                case "success-values": fields.successValues = value.split(separator: " ").map(String.init)
                default: fields.failureValues = value.split(separator: " ").map(String.init)
                }
                rule.fields = fields
            case "when":
                var alternative: [FieldCondition] = []
                for term in value.split(separator: " ") {
                    guard let e = term.firstIndex(of: "="), e != term.startIndex else {
                        throw fail(number, "a condition is FIELD=value|value")
                    }
                    let values = term[term.index(after: e)...].split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                    alternative.append(FieldCondition(path: String(term[..<e]), values: values))
                }
                guard !alternative.isEmpty else { throw fail(number, "empty when condition") }
                rule.conditions.append(alternative)
            case "field-match":
                guard let space = value.firstIndex(of: " ") else { throw fail(number, "field-match is FIELD PATTERN") }
                let text = String(value[value.index(after: space)...]).trimmingBlanks()
                let pattern: Pattern
                do { pattern = try Pattern(text) } catch { throw fail(number, "pattern \(error.description)") }
                guard pattern.structured == nil else { throw fail(number, "a field-match pattern cannot hold <json> or <kv>") }
                rule.fieldMatches.append(FieldMatch(path: String(value[..<space]), pattern: pattern, line: number))
            default:
                throw fail(number, "unknown key '\(key)' in a rule (outcome, match, method, user, optional, absent, type, *-field, success-values, failure-values, when, field-match, example, file-example, expect)")
            }
            current = rule
        }
        if let pending = pendingExample { throw fail(pending.line, "example without an expect line") }
        try finishRule(lines.last?.line ?? 0)
        guard sawService else { throw fail(1, "the file must name its service (service = name)") }
        guard !file.identifiers.isEmpty else { throw fail(1, "the file must list the identifiers it applies to") }
        if !file.journalMatches.isEmpty && file.trusted.isEmpty {
            throw fail(1, "a file with journal matches needs trusted conditions: any user can write a journal entry")
        }
        return file
    }

    struct ExpectError: Error { var message: String }

    /// `nothing`, or `field=value ...` with `"..."` quoting (`\"` and `\\` inside).
    static func parseExpect(_ text: String) throws(ExpectError) -> [String: String]? {
        if text == "nothing" { return nil }
        var result: [String: String] = [:]
        let chars = Array(text)
        var i = 0
        let known: Set<String> = ["outcome", "user", "ip", "port", "method", "service", "rule", "host", "remote_host", "time"]
        while i < chars.count {
            while i < chars.count, chars[i] == " " { i += 1 }
            if i == chars.count { break }
            var key = ""
            while i < chars.count, chars[i] != "=", chars[i] != " " { key.append(chars[i]); i += 1 }
            guard i < chars.count, chars[i] == "=" else { throw ExpectError(message: "expected field=value at '\(key)'") }
            guard known.contains(key) else { throw ExpectError(message: "unknown field '\(key)'") }
            i += 1
            var value = ""
            if i < chars.count, chars[i] == "\"" {
                i += 1
                while i < chars.count, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < chars.count { i += 1 }
                    value.append(chars[i])
                    i += 1
                }
                guard i < chars.count else { throw ExpectError(message: "unterminated quoted value for \(key)") }
                i += 1
            } else {
                while i < chars.count, chars[i] != " " { value.append(chars[i]); i += 1 }
            }
            guard result[key] == nil else { throw ExpectError(message: "\(key) is given twice") }
            result[key] = value
        }
        guard !result.isEmpty else { throw ExpectError(message: "expect needs fields or 'nothing'") }
        return result
    }
}
