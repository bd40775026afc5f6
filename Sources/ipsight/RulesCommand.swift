import ArgumentParser
import LogSources
import Rules

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Check rule files.",
        subcommands: [RulesTestCommand.self]
    )
}

struct RulesTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run every rule file's examples, or show which rule matches a line or file.",
        discussion: """
        Without --line or --file, checks each example line of each rule file against
        the fields it must yield, and that every pattern has an example (like
        fail2ban-regex over a filter's test lines). Exits with status 1 on a failure.

        Examples:
          ipsight rules test rules/
          ipsight rules test --line 'Nov  4 10:00:00 h sshd[1]: Accepted password for alice from 192.0.2.1 port 22 ssh2'
          ipsight rules test --file /var/log/auth.log --show-unmatched 20
        """
    )

    @Argument(help: "Directory of *.rules files (default: $IPSIGHT_RULES, /etc/ipsight/rules, ./rules).")
    var directory: String?

    @Option(help: "Test one log line and show the rule and pattern that match it.")
    var line: String?

    @Option(help: "Test every line of a file and count the matches of each rule.")
    var file: String?

    @Option(name: .customLong("show-unmatched"), help: "With --file, print up to this many lines no rule matched.")
    var showUnmatched = 10

    @Flag(help: "Read traditional syslog timestamps as UTC.")
    var utc = false

    func run() throws {
        guard let dir = directory ?? RuleSet.defaultDirectory() else {
            throw ValidationError("no rules directory found; pass one")
        }
        let rules: RuleSet
        do { rules = try RuleSet.load(directory: dir) } catch {
            throw IngestCommandFailure("\(error)")
        }
        if let line {
            try testLine(line, rules)
        } else if let file {
            try testFile(file, rules)
        } else {
            try testExamples(rules)
        }
    }

    private func testExamples(_ rules: RuleSet) throws {
        let report = ExampleCheck.run(rules)
        for file in rules.files {
            let failures = report.failures.filter { $0.path == file.path }
            print("\(failures.isEmpty ? "ok  " : "FAIL") \(file.path): \(file.rules.count) rules, \(file.examples.count) examples")
            for failure in failures { print("     \(failure)") }
        }
        print("\(report.examples) examples, \(report.coveredPatterns) of \(report.patterns) patterns exercised, \(report.failures.count) failures")
        if !report.failures.isEmpty { throw ExitCode(1) }
    }

    private func testLine(_ text: String, _ rules: RuleSet) throws {
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: utc ? .utc : .local))
        var copy = text
        guard let record = copy.withUTF8({ decoder.decode(UnsafeRawBufferPointer($0)) }) else {
            throw ValidationError("the line is not UTF-8 text")
        }
        print("identifier: \(record.identifier ?? "- (no syslog header)")")
        print("message:    \(record.message)")
        let explanation = rules.explain(record)
        switch explanation.result {
        case .event(let event):
            print("matched:    \(event.rule) (\(explanation.path ?? "?"):\(explanation.line ?? 0))")
            print(EventJSON.line(event))
        case .unmatched:
            print("no match:   rules exist for this identifier but none matched")
            throw ExitCode(1)
        case .noRule:
            print("no rule:    no rule file lists identifier \(record.identifier ?? "-")")
            throw ExitCode(1)
        case .untrusted(let service):
            print("untrusted:  \(service) would match, but the sender fails its trusted conditions")
            throw ExitCode(1)
        }
    }

    private func testFile(_ path: String, _ rules: RuleSet) throws {
        let follower = FileFollower(path: path)
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: utc ? .utc : .local))
        var perRule: [String: Int] = [:]
        var lines = 0
        var unmatched = 0
        var matched = 0
        var shown = 0
        try follower.run { line, _ in
            lines += 1
            guard let record = decoder.decode(line) else { return }
            let explanation = rules.explain(record)
            if case .event = explanation.result {
                matched += 1
                perRule["\(explanation.path ?? "?"):\(explanation.line ?? 0)", default: 0] += 1
            } else {
                unmatched += 1
                if shown < showUnmatched {
                    shown += 1
                    print("unmatched: \(String(decoding: line, as: UTF8.self))")
                }
            }
        }
        print("Lines: \(lines), matched: \(matched), unmatched: \(unmatched), skipped: \(follower.skips.longLines + follower.skips.binaryLines + lines - matched - unmatched)")
        for (key, count) in perRule.sorted(by: { $0.value > $1.value }) {
            print("  \(count)\t\(key)")
        }
    }
}
