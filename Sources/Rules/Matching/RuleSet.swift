#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LogSources

/// What the rules made of one record.
public enum MatchResult: Sendable, Equatable {
    case event(LoginEvent)
    /// Rules exist for the record's identifier but none matched.
    case unmatched
    /// A rule's pattern would apply, but journald's record of the sender fails
    /// every file's trusted-field conditions (a forged entry, or `_COMM` lost).
    case untrusted(service: String)
    /// No rule file claims the record's identifier.
    case noRule
    /// A rule's pattern fits, but client text in the line can be read two ways
    /// (it imitates the daemon's own text): no reading is trusted.
    case ambiguous(service: String)
}

/// All loaded rule files, indexed by syslog identifier and by the first byte
/// of the message, so each record is tried against the few patterns that can
/// apply to it.
public struct RuleSet: Sendable {
    public let files: [RuleFile]
    /// How times without a zone (`<time>` in a service's own log) are read.
    public var timeZone: SyslogTimeZone = .local
    /// "Now" for placing times written without a year; nil reads the wall clock.
    public var reference: Double?
    private var byIdentifier: [String: Dispatch] = [:]
    private let anyIdentifier: Dispatch
    private let headerless: Dispatch

    public init(files: [RuleFile]) {
        self.files = files
        var specific: [String: [Entry]] = [:]
        var general: [Entry] = []
        var raw: [Entry] = []
        for (index, file) in files.enumerated() {
            var entries: [Entry] = []
            for rule in file.rules {
                for (pattern, line) in rule.patterns {
                    entries.append(Entry(fileIndex: index, file: file, rule: rule, pattern: pattern, line: line))
                }
            }
            for ident in file.identifiers {
                switch ident {
                case "*": general += entries
                case "-": raw += entries
                default: specific[ident, default: []] += entries
                }
            }
        }
        for (ident, entries) in specific { byIdentifier[ident] = Dispatch(entries + general) }
        anyIdentifier = Dispatch(general)
        headerless = Dispatch(raw)
    }

    /// Loads every `*.rules` file of a directory, in name order.
    public static func load(directory: String) throws -> RuleSet {
        var names: [String] = []
        guard let dir = opendir(directory) else {
            throw RuleFileError(path: directory, line: 0, message: String(cString: strerror(errno)))
        }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name.hasSuffix(".rules") && !name.hasPrefix(".") { names.append(name) }
        }
        names.sort()
        var files: [RuleFile] = []
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            files.append(try RuleFileParser.parse(try readTextFile(path), path: path))
        }
        let set = RuleSet(files: files)
        var services: [String: String] = [:]
        for file in files {
            if let other = services[file.service] {
                throw RuleFileError(path: file.path, line: 1, message: "service \(file.service) is also defined in \(other)")
            }
            services[file.service] = file.path
        }
        return set
    }

    /// Every file's journal match alternatives, for the journal reader's filter.
    public var journalMatches: [[RuleFile.JournalTerm]] {
        files.flatMap(\.journalMatches)
    }

    /// Applies the rules to one record; at most one event per record.
    public func match(_ record: LogRecord) -> MatchResult {
        explain(record).result
    }

    /// What matched, for `ipsight rules test` and the example checks.
    public struct Explanation: Sendable {
        public var result: MatchResult
        /// The rule file and the line of the pattern (or JSON rule) that matched.
        public var path: String?
        public var line: Int?
        /// The pattern that matched.
        var pattern: Pattern?
    }

    /// Applies the rules to one record and tells which pattern matched.
    public func explain(_ record: LogRecord) -> Explanation {
        let dispatch: Dispatch
        if let ident = record.identifier {
            dispatch = byIdentifier[ident] ?? anyIdentifier
        } else {
            dispatch = headerless
        }
        if dispatch.isEmpty { return Explanation(result: .noRule) }
        var untrustedService: String?
        var message = record.message
        let context = EventContext(timeZone: timeZone, reference: reference)
        let found: Explanation? = message.withUTF8 { buffer in
            let bytes = UnsafeRawBufferPointer(buffer)
            var first = 0
            while first < bytes.count, bytes[first] == UInt8(ascii: " ") { first += 1 }
            let entries = dispatch.entries(first < bytes.count ? Int(bytes[first]) : 256)
            var skipFile = -1
            for (index, entry) in entries.enumerated() where entry.fileIndex != skipFile {
                let outcome = entry.apply(record, bytes, context)
                if case .none = outcome { continue }
                if let trusted = record.trusted, !entry.file.trusts(trusted) {
                    // Remember, but let another file (say, a service's own unit) claim it.
                    untrustedService = untrustedService ?? entry.file.service
                    skipFile = entry.fileIndex
                    continue
                }
                switch outcome {
                case .event(let event):
                    if entry.clientTextInRule,
                       Self.readsAnotherWay(event, winner: entry, later: entries[(index + 1)...], record, bytes, context) {
                        return Explanation(result: .ambiguous(service: entry.file.service), path: entry.file.path,
                                           line: entry.line, pattern: entry.pattern)
                    }
                    return Explanation(result: .event(event), path: entry.file.path, line: entry.line, pattern: entry.pattern)
                case .ambiguous:
                    return Explanation(result: .ambiguous(service: entry.file.service), path: entry.file.path, line: entry.line,
                                       pattern: entry.pattern)
                case .none:
                    continue
                }
            }
            return nil
        }
        if let found { return found }
        if let service = untrustedService { return Explanation(result: .untrusted(service: service)) }
        return Explanation(result: .unmatched)
    }

    /// Whether another pattern of the winner's rule reads the line differently. A
    /// pattern with client text after the address can make a line fit two forms of
    /// one wording (a certificate's key ID that imitates another form's tail), so
    /// when the rule has such patterns the later ones that could disagree are tried
    /// too: all of them after a winner with client text on both sides, only those
    /// with it otherwise. A reading that names no user is a fallback, not a rival.
    static func readsAnotherWay(_ event: LoginEvent, winner: Entry, later: ArraySlice<Entry>, _ record: LogRecord,
                                _ bytes: UnsafeRawBufferPointer, _ context: EventContext) -> Bool {
        let all = winner.pattern.program.unique
        for entry in later where entry.rule.line == winner.rule.line && entry.fileIndex == winner.fileIndex
            && (all || entry.pattern.program.unique) {
            switch entry.apply(record, bytes, context) {
            case .none: continue
            case .ambiguous: return true
            case .event(let other):
                let users = other.user != nil && event.user != nil && other.user != event.user
                if other.ip != event.ip || other.port != event.port || users
                    || other.outcome != event.outcome || other.remoteHost != event.remoteHost { return true }
            }
        }
        return false
    }

    /// What one pattern made of a message.
    enum EntryOutcome {
        case none
        case event(LoginEvent)
        case ambiguous
    }

    /// One pattern with what it needs to build an event.
    final class Entry: Sendable {
        let fileIndex: Int
        let file: RuleFile
        let rule: Rule
        let pattern: Pattern
        let line: Int
        /// Some pattern of this rule has client text after its address.
        let clientTextInRule: Bool

        init(fileIndex: Int, file: RuleFile, rule: Rule, pattern: Pattern, line: Int) {
            self.fileIndex = fileIndex
            self.file = file
            self.rule = rule
            self.pattern = pattern
            self.line = line
            clientTextInRule = rule.patterns.contains { $0.pattern.program.unique }
        }

        /// The first byte a message must start with, or -1 for any.
        var firstByte: Int { pattern.program.firstByte }

        func apply(_ record: LogRecord, _ bytes: UnsafeRawBufferPointer, _ context: EventContext) -> EntryOutcome {
            var captures = Captures()
            switch pattern.program.match(bytes, &captures) {
            case .none: return .none
            case .ambiguous: return .ambiguous
            case .matched: break
            }
            if let range = captures.structured, let kind = pattern.structured {
                return StructuredRule.apply(rule, kind, file: file, record: record, bytes, range, captures,
                                            requiresAddress: pattern.requiresAddress, context)
            }
            guard let event = RuleSet.makeEvent(rule, pattern: pattern, file: file, record: record, bytes, captures, context)
            else { return .none }
            return .event(event)
        }
    }

    /// Entries by the message's first byte (index 256: an empty message), in file order.
    final class Dispatch: Sendable {
        let table: [[Entry]]
        let isEmpty: Bool

        init(_ entries: [Entry]) {
            isEmpty = entries.isEmpty
            table = (0...256).map { byte in entries.filter { $0.firstByte < 0 || $0.firstByte == byte } }
        }

        @inline(__always)
        func entries(_ byte: Int) -> [Entry] { table[byte] }
    }

    static func makeEvent(_ rule: Rule, pattern: Pattern, file: RuleFile, record: LogRecord,
                          _ bytes: UnsafeRawBufferPointer, _ captures: Captures, _ context: EventContext) -> LoginEvent? {
        func text(_ range: Range<Int>?) -> String? {
            guard let range, !range.isEmpty else { return nil }
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
            return rule.absent.contains(s) ? nil : s
        }
        let user = text(captures.user) ?? rule.user
        if user == nil && !rule.userOptional { return nil }
        var ip: String?
        var remoteHost: String?
        if let range = captures.host, !range.isEmpty {
            guard let (address, name) = resolveHost(UnsafeRawBufferPointer(rebasing: bytes[range]),
                                                   requiresAddress: pattern.requiresAddress) else { return nil }
            ip = address
            remoteHost = name
        }
        var port: Int?
        if let range = captures.port, !range.isEmpty {
            var value = 0
            for b in bytes[range] { value = value * 10 + Int(b - 48) }
            guard value <= 65_535 else { return nil }
            port = value
        }
        return LoginEvent(time: captures.time.map { context.seconds($0, record: record) } ?? record.time, host: record.host,
                          service: text(captures.service) ?? file.service,
                          outcome: rule.outcome ?? .failure, user: user, ip: ip, port: port,
                          method: text(captures.method) ?? rule.method, rule: rule.qualifiedName, remoteHost: remoteHost)
    }

    /// An address in canonical form, or a host name as `UseDNS` logs it; nil
    /// (no event) for anything else, or for a name where an address is required.
    static func resolveHost(_ raw: UnsafeRawBufferPointer, requiresAddress: Bool) -> (ip: String?, name: String?)? {
        if let address = IPAddress(bytes: raw) {
            return (IPAddress.canonicalText(address, raw: raw), nil)
        }
        guard !requiresAddress, looksLikeHostName(raw) else { return nil }
        return (nil, String(decoding: raw, as: UTF8.self))
    }

    /// A DNS name as sshd's `UseDNS` logs it: labels of letters, digits and `-`,
    /// with at least one letter (so a malformed address is not taken for a name).
    static func looksLikeHostName(_ raw: UnsafeRawBufferPointer) -> Bool {
        var letters = false
        for b in raw {
            let lower = b | 0x20
            if lower >= 0x61 && lower <= 0x7A { letters = true; continue }
            if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") { continue }
            return false
        }
        return letters
    }
}

/// Reads a whole text file (rule files are small).
func readTextFile(_ path: String) throws -> String {
    guard let f = fopen(path, "rb") else {
        throw RuleFileError(path: path, line: 0, message: String(cString: strerror(errno)))
    }
    defer { fclose(f) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 65_536, f) }
        if n == 0 { break }
        data += chunk[0..<n]
        if data.count > 16 << 20 { throw RuleFileError(path: path, line: 0, message: "larger than 16 MiB") }
    }
    guard let text = String(validating: data, as: UTF8.self) else {
        throw RuleFileError(path: path, line: 0, message: "not UTF-8 text")
    }
    return text
}
