import IPSightCore
import LogSources

/// One rule file: a service's journal matches, syslog identifiers, trusted-field
/// conditions, rules with patterns, and examples. See `docs/ingest.md` for the format.
public struct RuleFile: Sendable {
    public var path: String
    public var service: String
    /// Syslog identifiers the rules apply to; `-` stands for lines without a
    /// syslog header (access logs, JSON lines) and `*` for every identifier.
    public var identifiers: [String] = []
    /// Journal matches: each alternative is a list of `FIELD=value` terms that must all hold.
    public var journalMatches: [[JournalTerm]] = []
    /// Conditions on journald's trusted fields: one alternative must hold entirely.
    public var trusted: [[TrustedTerm]] = []
    public var rules: [Rule] = []
    public var examples: [Example] = []

    public struct JournalTerm: Sendable, Equatable {
        public var field: String
        public var value: String
        public var text: String { "\(field)=\(value)" }
    }

    public struct TrustedTerm: Sendable, Equatable {
        public var field: String
        public var values: [String]

        func holds(_ fields: TrustedFields) -> Bool {
            guard let value = fields[field] else { return false }
            return values.contains { FieldValue.matches($0, value) }
        }
    }

    /// True if the journal's record of the sender satisfies one alternative.
    public func trusts(_ fields: TrustedFields) -> Bool {
        trusted.contains { alternative in alternative.allSatisfy { $0.holds(fields) } }
    }
}

/// A named rule: an outcome and the patterns that yield it.
public struct Rule: Sendable {
    public var name: String
    /// `service/name`, as events report it.
    public var qualifiedName: String
    public var outcome: LoginEvent.Outcome?
    public var patterns: [(pattern: Pattern, line: Int)] = []
    /// The method when the pattern captures none.
    public var method: String?
    /// The user when the daemon's text implies one (`ROOT LOGIN REFUSED`).
    public var user: String?
    /// A user is required unless the daemon's line cannot name one.
    public var userOptional = false
    /// Captured texts that mean "not given" (`-` in access logs).
    public var absent: [String] = []
    /// Where the fields of a `<json>` or `<kv>` part are; nil for a rule without one.
    public var fields: FieldMap?
    /// `when` lines: one alternative must hold entirely.
    public var conditions: [[FieldCondition]] = []
    /// `field-match` lines: patterns over one field's text, tried in order.
    public var fieldMatches: [FieldMatch] = []
    public var line: Int
}

/// Where a structured rule finds each field (dotted paths into nested JSON objects).
public struct FieldMap: Sendable {
    public var user: String?
    public var ip: String?
    public var time: String?
    public var port: String?
    public var method: String?
    /// A field holding the outcome; nil when the rule's `outcome` is fixed.
    public var outcome: String?
    public var successValues = ["success", "ok", "true", "succeeded"]
    public var failureValues = ["failure", "fail", "failed", "false", "denied"]

    public init() {}

    /// The names a plain `type = json` rule has always used.
    public static var jsonDefaults: FieldMap {
        var map = FieldMap()
        map.user = "user"
        map.ip = "ip"
        map.time = "time"
        map.port = "port"
        map.method = "method"
        return map
    }
}

/// `FIELD=value|value` in a `when` line.
public struct FieldCondition: Sendable, Equatable {
    public var path: String
    public var values: [String]
}

/// `field-match = FIELD PATTERN`.
public struct FieldMatch: Sendable {
    public var path: String
    public var pattern: Pattern
    public var line: Int
}

/// Comparisons of a field's text with a configured value: exact, or a prefix
/// when the value ends in `*` (`sshd@*` for templated units).
enum FieldValue {
    static func matches(_ wanted: String, _ actual: String) -> Bool {
        if wanted.hasSuffix("*") { return actual.hasPrefix(wanted.dropLast()) }
        return wanted == actual
    }
}

/// An example line and what the rules must yield for it.
public struct Example: Sendable {
    public var text: String
    /// For a line of the service's own log file (`file-example`): the identifier
    /// the file is read with; nil for a syslog line (or one without a header).
    public var identifier: String?
    /// nil: the line must yield no event.
    public var expect: [String: String]?
    public var line: Int
    public var path: String
}

/// A rule file error with its location.
public struct RuleFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var line: Int
    public var message: String
    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}
