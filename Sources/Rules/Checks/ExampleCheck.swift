import IPSightCore
import LogSources

/// Runs every rule file's examples through the whole rule set, as
/// `ipsight rules test` and the test suite do.
public enum ExampleCheck {
    public struct Failure: Sendable, CustomStringConvertible {
        public var path: String
        public var line: Int
        public var message: String
        public var description: String { "\(path):\(line): \(message)" }
    }

    public struct Report: Sendable {
        public var examples = 0
        public var failures: [Failure] = []
        /// Patterns (and JSON rules) per file, and how many of them an example exercised.
        public var patterns = 0
        public var coveredPatterns = 0
    }

    /// The reference time that places the examples' traditional timestamps.
    public static let reference = 1_542_189_600.0 // 2018-11-14T10:00:00Z

    public static func run(_ rules: RuleSet) -> Report {
        let rules = prepared(rules)
        var report = Report()
        var covered = Set<String>()
        for file in rules.files {
            for example in file.examples {
                report.examples += 1
                let record = Self.record(example)
                guard let record else {
                    report.failures.append(Failure(path: file.path, line: example.line, message: "the example is not valid text"))
                    continue
                }
                let explanation = rules.explain(record)
                if let path = explanation.path, let line = explanation.line { covered.insert("\(path):\(line)") }
                if let problem = check(explanation.result, against: example.expect, service: file.service) {
                    report.failures.append(Failure(path: file.path, line: example.line, message: problem))
                }
            }
        }
        for file in rules.files {
            for rule in file.rules {
                for line in rule.patterns.map(\.line) {
                    report.patterns += 1
                    if covered.contains("\(file.path):\(line)") {
                        report.coveredPatterns += 1
                    } else {
                        report.failures.append(Failure(path: file.path, line: line,
                                                       message: "no example matches this pattern of rule [\(rule.name)]"))
                    }
                }
            }
        }
        return report
    }

    /// The record an example stands for: a syslog line (or one without a header),
    /// or, for a `file-example`, a line of the service's own file read with its identifier.
    public static func record(_ example: Example) -> LogRecord? {
        var text = example.text
        if let identifier = example.identifier {
            return text.withUTF8 { buffer in
                LineDecoder.string(UnsafeRawBufferPointer(buffer), 0..<buffer.count).map {
                    LogRecord(identifier: identifier, message: $0)
                }
            }
        }
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: reference))
        return text.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0)) }
    }

    /// The rule set examples are checked with: times without a zone read as UTC,
    /// times without a year placed before the examples' reference.
    public static func prepared(_ rules: RuleSet) -> RuleSet {
        var rules = rules
        rules.timeZone = .utc
        rules.reference = reference
        return rules
    }

    /// nil when the result is what the example expects, otherwise why not.
    static func check(_ result: MatchResult, against expect: [String: String]?, service: String) -> String? {
        guard let expect else {
            if case .event(let event) = result { return "expected nothing, got \(EventJSON.line(event))" }
            return nil
        }
        guard case .event(let event) = result else { return "expected an event, got \(result)" }
        var problems: [String] = []
        for (key, wanted) in expect.sorted(by: { $0.key < $1.key }) {
            let actual: String?
            switch key {
            case "outcome": actual = event.outcome.rawValue
            case "user": actual = event.user
            case "ip": actual = event.ip
            case "port": actual = event.port.map(String.init)
            case "method": actual = event.method
            case "service": actual = event.service
            case "host": actual = event.host
            case "remote_host": actual = event.remoteHost
            case "time": actual = event.time.map(CivilTime.rfc3339)
            case "rule": actual = event.rule
            default: actual = nil
            }
            var target: String? = wanted == "-" ? nil : wanted
            if key == "rule", let t = target, !t.contains("/") { target = "\(service)/\(t)" }
            if actual != target {
                problems.append("\(key): expected \(target ?? "-"), got \(actual ?? "-")")
            }
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ") + " (" + EventJSON.line(event) + ")"
    }
}
