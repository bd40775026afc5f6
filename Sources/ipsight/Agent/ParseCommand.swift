import IPSightCore
import ArgumentParser
import LogSources
import Rules
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Turn log lines into login events, one JSON line each.",
        discussion: """
        Reads syslog files (traditional, RFC 3339 or RFC 5424 timestamps), access
        logs and JSON lines, standard input (no FILE or "-"), or the systemd journal,
        and writes one JSON object per login event on standard output:
        {"time", "host", "service", "outcome", "user", "ip", "port", "method", "rule"}.
        Counts of unmatched and refused lines go to standard error.

        Examples:
          ipsight parse /var/log/auth.log
          ipsight parse --journal --follow
          ipsight parse --year 2018 --utc --stats auth.log > events.jsonl
          ipsight parse --journal-dir /var/log/journal/MACHINE --after-cursor 's=...'
          journalctl -u ssh -o cat | ipsight parse --identifier sshd
          ipsight parse --state /var/lib/ipsight/parse.state /var/log/auth.log   # only what is new since the last run
        """
    )

    @Option(help: "Directory of *.rules files (default: $IPSIGHT_RULES, /etc/ipsight/rules, ./rules).")
    var rules: String?

    @Flag(help: "Read the local systemd journal.")
    var journal = false

    @Option(name: .customLong("journal-dir"), help: "Read the journal files in a directory.")
    var journalDirectory: String?

    @Option(name: .customLong("journal-file"), help: "Read a journal file (repeatable).")
    var journalFiles: [String] = []

    @Option(name: .customLong("after-cursor"), help: "Journal: start after the entry with this cursor.")
    var afterCursor: String?

    @Option(help: "Keep the journal cursor and file positions in this file: start after them, save them as events are written.")
    var state: String?

    @Flag(help: "Keep reading: wait for new journal entries, or follow files through rotation like tail -F.")
    var follow = false

    @Flag(name: .customLong("from-end"), help: "Journal or followed files: start at the end, reading only new entries.")
    var fromEnd = false

    @Option(help: "The year of the first traditional syslog timestamp (for replaying old files).")
    var year: Int?

    @Flag(help: "Read traditional syslog timestamps as UTC rather than local time.")
    var utc = false

    @Flag(help: "Print throughput (lines/s, events/s) and the last journal cursor to standard error.")
    var stats = false

    @Option(name: .customLong("show-unmatched"), help: "Print up to this many lines that matched no rule to standard error.")
    var showUnmatched = 0

    @Option(help: "Read the files as this service's own log, not syslog: each whole line is a message of this identifier (keycloak, vaultwarden, sshd for `journalctl -o cat` output).")
    var identifier: String?

    @Flag(name: .customLong("line-numbers"), help: "Add each event's input line number (\"line\") to its JSON.")
    var lineNumbers = false

    @Argument(help: "Log files to read; none or \"-\" reads standard input.")
    var files: [String] = []

    func validate() throws {
        let journalSources = (journal ? 1 : 0) + (journalDirectory == nil ? 0 : 1) + (journalFiles.isEmpty ? 0 : 1)
        if journalSources > 1 { throw ValidationError("choose one of --journal, --journal-dir and --journal-file") }
        if journalSources == 1 && !files.isEmpty { throw ValidationError("give either files or a journal source, not both") }
        if afterCursor != nil && journalSources == 0 { throw ValidationError("--after-cursor applies to the journal") }
        if follow && files.contains("-") { throw ValidationError("standard input cannot be followed; it is read to its end") }
        if state != nil && afterCursor != nil { throw ValidationError("give either --state or --after-cursor") }
    }

    func run() throws {
        guard let directory = rules ?? RuleSet.defaultDirectory() else {
            throw ValidationError("no rules directory found; pass --rules DIR")
        }
        var ruleSet: RuleSet
        do { ruleSet = try RuleSet.load(directory: directory) } catch {
            throw IngestCommandFailure("\(error)")
        }
        ruleSet.timeZone = utc ? .utc : .local
        let session = ParseSession(rules: ruleSet, showUnmatched: showUnmatched, lineNumbers: lineNumbers)
        let store: any PositionStore
        do { store = try state.map { try PositionFile(path: $0) } ?? MemoryPositionStore() } catch {
            throw IngestCommandFailure("\(error)")
        }
        let group = SourceGroup()
        let started = Clock.now
        do {
            try plan(ruleSet).start(in: group, store: store)
            try session.read(group, store: state == nil ? nil : store, flushEachBatch: follow)
        } catch {
            group.stop()
            session.flush()
            throw IngestCommandFailure("\(error)")
        }
        session.report(elapsed: Clock.now - started, cpu: Clock.cpuSeconds, stats: stats)
    }

    /// The same description of what to read as the agent's.
    private func plan(_ rules: RuleSet) -> SourcePlan {
        var plan = SourcePlan()
        if let dir = journalDirectory { plan.journal = .directory(dir) } else if !journalFiles.isEmpty {
            plan.journal = .files(journalFiles)
        } else if journal { plan.journal = .local }
        if plan.journal != nil {
            plan.journalMatches = rules.journalMatches.map { $0.map(\.text) }
            plan.journalCursor = afterCursor
        } else {
            plan.files = files.isEmpty ? ["-"] : files
            if let identifier { for path in plan.files { plan.fileIdentifiers[path] = identifier } }
        }
        plan.follow = follow
        plan.startAtEnd = fromEnd
        plan.header = SyslogHeaderParser(timeZone: utc ? .utc : .local)
        plan.header.firstYear = year
        plan.onGap = { printError("ipsight parse: warning: lines lost: \($0)") }
        return plan
    }
}

/// A runtime failure: printed as `Error: ...`, exit status 1 (no usage text,
/// unlike a `ValidationError`).
struct IngestCommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Counts and output of one `parse` run.
final class ParseSession {
    let rules: RuleSet
    let showUnmatched: Int
    let lineNumbers: Bool
    let out = OutputBuffer()
    var records = 0
    var successes = 0
    var failures = 0
    var unmatched = 0
    var noRule = 0
    var untrusted = 0
    var ambiguous = 0
    var shown = 0
    var skips = SkipCounts()
    /// Journal entries read, numbering them for `--line-numbers`.
    var entries = 0
    var lastCursor: String?

    init(rules: RuleSet, showUnmatched: Int, lineNumbers: Bool) {
        self.rules = rules
        self.showUnmatched = showUnmatched
        self.lineNumbers = lineNumbers
    }

    /// Everything the sources hand out until they end; positions go to `store`
    /// once the events before them are written (after each batch when following,
    /// at the end otherwise). The first failing source ends the run.
    func read(_ group: SourceGroup, store: (any PositionStore)?, flushEachBatch: Bool) throws {
        var active = Set(group.keys)
        var positions: [String: String] = [:]
        while !active.isEmpty {
            guard let item = group.next(timeout: .infinity) else { continue }
            switch item {
            case .records(let key, let batch):
                for record in batch { handle(record) }
                if let position = batch.last?.position.text { positions[key] = position }
                if case .journal(let cursor)? = batch.last?.position { lastCursor = cursor }
                if flushEachBatch {
                    flush()
                    if let store, !positions.isEmpty { try store.save(positions) }
                    positions.removeAll()
                }
            case .finished(let key):
                active.remove(key)
            case .failed(_, let error):
                throw error
            }
        }
        flush()
        if let store, !positions.isEmpty { try store.save(positions) }
        skips = group.skips
    }

    func handle(_ record: LogRecord) {
        records += 1
        if record.line == 0 { entries += 1 }
        switch rules.match(record) {
        case .event(let event):
            if event.outcome == .success { successes += 1 } else { failures += 1 }
            EventJSON.append(event, to: out, line: lineNumbers ? (record.line > 0 ? record.line : entries) : nil)
            if out.count >= 1 << 16 { flush() }
        case .unmatched:
            unmatched += 1
            show(record)
        case .noRule:
            noRule += 1
            show(record)
        case .untrusted:
            untrusted += 1
        case .ambiguous:
            ambiguous += 1
            show(record)
        }
    }

    private func show(_ record: LogRecord) {
        guard shown < showUnmatched else { return }
        shown += 1
        printError("unmatched: \(record.identifier ?? "-"): \(record.message)")
    }

    func flush() {
        var offset = 0
        while offset < out.count {
            let n = write(1, out.base + offset, out.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            offset += n
        }
        out.removeAll()
    }

    func report(elapsed: Double, cpu: Double, stats: Bool) {
        let inputCount = records + skips.longLines + skips.binaryLines
        printError("ipsight parse: \(inputCount) lines, \(successes + failures) events (\(successes) success, \(failures) failure), "
            + "\(unmatched) unmatched, \(noRule) without a rule, \(untrusted) untrusted, \(ambiguous) ambiguous, "
            + "\(skips.longLines) too long, \(skips.binaryLines) binary")
        guard stats else { return }
        let seconds = max(elapsed, 1e-9)
        printError("ipsight parse: \(format(seconds)) s wall, \(format(cpu)) s CPU, "
            + "\(Int(Double(inputCount) / seconds)) lines/s, \(Int(Double(successes + failures) / seconds)) events/s")
        if let lastCursor { printError("ipsight parse: last cursor \(lastCursor)") }
    }

    private func format(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        return String(scaled)
    }
}

private func printError(_ text: String) {
    var line = text
    line.append("\n")
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

