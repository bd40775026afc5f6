/// The line structure config files and rule files share: `[section]` headers,
/// `key = value` entries, blank lines and `#` comment lines, any line ending
/// (CRLF included). What names and values may be is each format's own rule.
public enum INIText {
    public enum Line: Sendable, Equatable {
        /// `[name]`, the name trimmed.
        case section(String)
        /// `key = value`, both trimmed; the value runs to the end of the line.
        case entry(key: String, value: String)
    }

    public struct SyntaxError: Error, Equatable {
        public var line: Int
        public var message: String
    }

    /// The section headers and entries of `text` with their 1-based line numbers.
    ///
    /// - Parameter inlineComments: a `#` after other text starts a comment too,
    ///   unless it is inside double quotes (config files). Rule files keep it:
    ///   their patterns and examples may contain `#`.
    public static func lines(_ text: String, inlineComments: Bool) throws(SyntaxError) -> [(line: Int, Line)] {
        var result: [(line: Int, Line)] = []
        var number = 0
        // Any newline, CRLF included: `"\r\n"` is one Character, not a "\n".
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            let line = (inlineComments ? stripComment(raw) : raw).trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw SyntaxError(line: number, message: "a section header looks like [name]")
                }
                result.append((number, .section(line.dropFirst().dropLast().trimmingBlanks())))
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw SyntaxError(line: number, message: "expected 'key = value'")
            }
            result.append((number, .entry(key: line[..<equals].trimmingBlanks(),
                                          value: line[line.index(after: equals)...].trimmingBlanks())))
        }
        return result
    }

    /// A `#` starts a comment unless it is inside double quotes.
    private static func stripComment(_ line: Substring) -> Substring {
        var quoted = false
        for index in line.indices {
            let c = line[index]
            if c == "\"" { quoted.toggle() }
            if c == "#" && !quoted { return line[..<index] }
        }
        return line
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and line ends.
    public func trimmingBlanks() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n" { s.removeLast() }
        return String(s)
    }
}
