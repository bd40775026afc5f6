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

    @Option(name: .customLong("rules"), help: "Directory of *.rules files (the same as the argument).")
    var rulesDirectory: String?

    @Option(help: "Test one log line and show the rule and pattern that match it.")
    var line: String?

    @Option(help: "Test every line of a file: lines by identifier, matched and unmatched, and the commonest unmatched shapes.")
    var file: String?

    @Option(help: "Read --line or --file as this service's own log (not syslog): the whole line is the message.")
    var identifier: String?

    @Option(name: .customLong("show-unmatched"), help: "With --file, print up to this many unmatched shapes (and lines).")
    var showUnmatched = 10

    @Flag(help: "Also put every rule's wording into every client-controlled slot of every example: the events must not change.")
    var inject = false

    @Flag(help: "Read timestamps without a zone as UTC.")
    var utc = false

    func run() throws {
        guard let dir = rulesDirectory ?? directory ?? RuleSet.defaultDirectory() else {
            throw ValidationError("no rules directory found; pass one")
        }
        var rules: RuleSet
        do { rules = try RuleSet.load(directory: dir) } catch {
            throw IngestCommandFailure("\(error)")
        }
        rules.timeZone = utc ? .utc : .local
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
        var failed = !report.failures.isEmpty
        if inject {
            let injection = InjectionCheck.run(rules)
            for failure in injection.failures { print("INJECTION \(failure)") }
            print("\(injection.injections) injections of client text, \(injection.refused) refused as ambiguous, \(injection.failures.count) failures")
            failed = failed || !injection.failures.isEmpty
        }
        if failed { throw ExitCode(1) }
    }

    private func decoder() -> LineDecoder {
        LineDecoder(header: SyslogHeaderParser(timeZone: utc ? .utc : .local), identifier: identifier)
    }

    private func testLine(_ text: String, _ rules: RuleSet) throws {
        var decoder = decoder()
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
        case .ambiguous(let service):
            print("ambiguous:  \(service) (\(explanation.path ?? "?"):\(explanation.line ?? 0)) fits, but client text in the line reads two ways; refused")
            throw ExitCode(1)
        }
    }

    private func testFile(_ path: String, _ rules: RuleSet) throws {
        let follower = FileFollower(path: path)
        var decoder = decoder()
        var coverage = Coverage()
        try follower.run { line, _ in
            coverage.lines += 1
            guard let record = decoder.decode(line) else { return }
            coverage.add(record, rules.explain(record))
        }
        coverage.skipped += follower.skips.longLines + follower.skips.binaryLines
        print(coverage.report(top: showUnmatched), terminator: "")
    }
}
