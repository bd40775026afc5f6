import IPSightCore

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
        let lines: [(line: Int, INIText.Line)]
        do { lines = try INIText.lines(text, inlineComments: true) } catch {
            throw ConfigError(file: path, line: error.line, key: nil, message: error.message)
        }
        var section = ""
        var seen: [String: Int] = [:]
        for (number, line) in lines {
            switch line {
            case .section(let name):
                guard ConfigFile.isName(name) else {
                    throw ConfigError(file: path, line: number, key: nil, message: "'\(name)' is not a section name")
                }
                section = name
            case .entry(let key, var value):
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
    }

    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "." || $0 == "@" }
    }
}
