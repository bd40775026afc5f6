import IPSightCore
import LogSources
@testable import Rules

/// Paths relative to the package, found from this file so tests run from any directory.
enum Paths {
    static let packageRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
    static let rules = packageRoot + "/rules"
    /// `../shared` beside the checkout (CI clones the repository with it).
    static let shared = packageRoot + "/../shared"
}

func loadRules() throws -> RuleSet {
    try RuleSet.load(directory: Paths.rules)
}

/// Decodes one log line the way `ipsight parse` does (UTC, reference 2018).
func record(_ line: String) -> LogRecord {
    var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: ExampleCheck.reference))
    var text = line
    return text.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0))! }
}

func event(_ result: MatchResult) -> LoginEvent? {
    if case .event(let e) = result { return e }
    return nil
}
