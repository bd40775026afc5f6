/// A configuration problem, named by file, line and key so it can be fixed
/// without guessing.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var key: String?
    public var message: String

    public init(file: String, line: Int?, key: String?, message: String) {
        self.file = file
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if let key { text += "\(key): " }
        return text + message
    }
}

/// The INI/TOML-like text of a config file: `[section]` headers and
/// `key = value` lines, `#` comments, values optionally in double quotes.
/// Every value keeps its line so that later validation can point at it.
struct ConfigFile {
    struct Entry {
        var section: String
        var key: String
        var value: String
        var line: Int
        /// `section.key`, as errors name it.
        var name: String { section.isEmpty ? key : "\(section).\(key)" }
    }

    let path: String
    private(set) var entries: [Entry] = []

    init(text: String, path: String) throws(ConfigError) {
        self.path = path
        var section = ""
        var seen: [String: Int] = [:]
        var number = 0
        // Any newline, CRLF included: `"\r\n"` is one Character, not a "\n".
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            let line = ConfigFile.stripComment(raw).trimmedBlanks()
            if line.isEmpty { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigError(file: path, line: number, key: nil, message: "a section header looks like [name]")
                }
                section = String(line.dropFirst().dropLast()).trimmedBlanks()
                guard ConfigFile.isName(section) else {
                    throw ConfigError(file: path, line: number, key: nil, message: "'\(section)' is not a section name")
                }
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(file: path, line: number, key: nil, message: "expected 'key = value'")
            }
            let key = String(line[..<equals]).trimmedBlanks()
            var value = String(line[line.index(after: equals)...]).trimmedBlanks()
            guard ConfigFile.isName(key) else {
                throw ConfigError(file: path, line: number, key: key.isEmpty ? nil : key, message: "not a key name")
            }
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else {
                    throw ConfigError(file: path, line: number, key: key, message: "unterminated quoted value")
                }
                value = String(value.dropFirst().dropLast())
            }
            let entry = Entry(section: section, key: key, value: value, line: number)
            if let first = seen[entry.name] {
                throw ConfigError(file: path, line: number, key: entry.name, message: "set twice (first on line \(first))")
            }
            seen[entry.name] = number
            entries.append(entry)
        }
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

    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." || $0 == "@" }
    }
}

extension StringProtocol {
    func trimmedBlanks() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
