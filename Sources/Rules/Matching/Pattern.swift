import LogSources

/// The fields a pattern can capture into a login event.
public enum CaptureField: String, Sendable {
    case user, host, port, method, service, text
}

/// The structured part a pattern can end with.
public enum StructuredKind: String, Sendable {
    /// A JSON object.
    case json
    /// `key=value` pairs (logfmt, or `key=value, key=value`).
    case kv
}

/// Where each captured field lies in the message, as byte ranges.
struct Captures {
    var user: Range<Int>?
    var host: Range<Int>?
    var port: Range<Int>?
    var method: Range<Int>?
    var service: Range<Int>?
    /// A `<text>` slot: client text, kept only so tests can inject into it.
    var text: Range<Int>?
    /// The `<json>` or `<kv>` part that ends the message.
    var structured: Range<Int>?
    var time: ParsedTime?
}

/// How a pattern's match came out.
enum MatchStatus: UInt8 {
    case none, matched
    /// More than one reading of client text fits: no reading is trusted.
    case ambiguous
}

/// A compiled pattern: literal daemon text with typed placeholders, matched on
/// bytes, anchored at both ends, in time linear in the message length.
///
/// Placeholders: `<user>` (free text, may hold spaces), `<user:word>`,
/// `<user:alnum>`, `<user:name>` (letters, digits, `.`, `_`, `-`, `@`),
/// `<host>` (address or host name), `<ip>` (an address only), `<ipport>`
/// (`address:port`, split at the last colon), `<port>`, `<method>`,
/// `<service>`, and uncaptured `<word>`, `<alnum>`, `<name>`, `<num>`, `<opt>`
/// (a word or nothing), `<any>` (free text or nothing), `<quoted>` (a `"..."`
/// string with backslash escapes), `<clftime>` (`[14/Nov/2018:10:00:00 +0000]`'s
/// inside, captured as the time). A `?` after a word-like name allows it to be
/// empty (`<host?>`). A space matches a run of one to 64 spaces; `\` makes the
/// next character literal.
///
/// Matching never backtracks: a word-like placeholder takes the whole run of its
/// byte class (the text after it must start outside the class, which the
/// compiler checks). At most one free placeholder may stand before the end; the
/// text after it is matched at the rightmost position where the rest of the
/// pattern fits, because the daemon writes its own text after the user-controlled
/// part: `Invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 4711` yields the
/// user `x from 1.2.3.4 port 22` and the address 5.6.7.8.
public struct Pattern: Sendable {
    enum Element: Sendable {
        case literal([UInt8])
        case token(field: CaptureField?, cls: UInt8, min: Int, max: Int)
        /// `address:port`; `colonAfter`: the daemon writes a `:` right after the port.
        case hostPort(colonAfter: Bool)
        /// Free text. `client`: a remote party can put text in it (a user name, a
        /// certificate's key ID), as opposed to text the daemon writes itself.
        case free(field: CaptureField?, nonEmpty: Bool, client: Bool, maxLength: Int)
        case quoted
        case time
        case structured(StructuredKind)
    }

    public let source: String
    /// `<ip>` rather than `<host>`: a host name is not accepted.
    public let requiresAddress: Bool
    public let fields: Set<CaptureField>
    /// The structured part the pattern ends with, if any.
    public let structured: StructuredKind?
    /// The flat, reference-counting-free form the matcher runs.
    let program: PatternProgram

    static let space = UInt8(ascii: " ")

    // MARK: - Compiling

    public struct CompileError: Error, Equatable, CustomStringConvertible {
        public var message: String
        /// 1-based character column in the pattern text.
        public var column: Int
        public var description: String { "column \(column): \(message)" }
    }

    public init(_ text: String) throws(CompileError) {
        source = text
        var elements: [Element] = []
        var columns: [Int] = []
        var literal: [UInt8] = []
        var literalColumn = 1
        var requiresAddress = false
        var fields = Set<CaptureField>()
        let bytes = Array(text.utf8)
        var i = 0
        func flush() {
            if !literal.isEmpty { elements.append(.literal(literal)); columns.append(literalColumn); literal = [] }
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\\") {
                guard i + 1 < bytes.count else { throw CompileError(message: "a pattern cannot end with \\", column: i + 1) }
                if literal.isEmpty { literalColumn = i + 1 }
                literal.append(bytes[i + 1])
                i += 2
                continue
            }
            if c == Self.space {
                if literal.isEmpty { literalColumn = i + 1 }
                if literal.last != Self.space { literal.append(c) }
                i += 1
                continue
            }
            if c == UInt8(ascii: "<"), let (element, field, address, length) = try Self.placeholder(bytes, at: i) {
                flush()
                if let last = elements.last, case .literal = last {} else if !elements.isEmpty {
                    throw CompileError(message: "two placeholders need literal text between them", column: i + 1)
                }
                if let field, field != .text {
                    if fields.contains(field) { throw CompileError(message: "\(field.rawValue) is captured twice", column: i + 1) }
                    fields.insert(field)
                }
                if address { requiresAddress = true }
                if case .hostPort = element { fields.insert(.host); fields.insert(.port) }
                elements.append(element)
                columns.append(i + 1)
                i += length
                continue
            }
            if literal.isEmpty { literalColumn = i + 1 }
            literal.append(c)
            i += 1
        }
        flush()
        self.requiresAddress = requiresAddress
        self.fields = fields
        var structured: StructuredKind?
        for (k, element) in elements.enumerated() {
            guard case .structured(let kind) = element else { continue }
            guard k == elements.count - 1 else {
                throw CompileError(message: "<\(kind.rawValue)> takes the rest of the message: it must end the pattern", column: columns[k])
            }
            structured = kind
        }
        self.structured = structured

        let anchored = elements.contains(where: { if case .literal(let l) = $0 { return l.contains { $0 != Self.space } } else { return false } })
        guard anchored || (elements.count == 1 && structured != nil)
        else { throw CompileError(message: "a pattern needs some literal text of the daemon's to anchor on", column: 1) }

        // Word-like placeholders must be followed by text that starts outside their class.
        for (k, element) in elements.enumerated() where k + 1 < elements.count {
            guard case .literal(let next) = elements[k + 1] else { continue }
            switch element {
            case .token(let field, let cls, let minimum, let maximum)
                where field == .host && next[0] == UInt8(ascii: ".") && (next.count == 1 || next[1] == Self.space):
                // `IP: <ip>. Username:` (Vaultwarden): a full stop that ends the
                // address's run is the daemon's, since no address ends in one.
                elements[k] = .token(field: field, cls: cls | ByteClass.trailingDot, min: minimum, max: maximum)
            case .token(_, let cls, _, _):
                if ByteClass.contains(cls, next[0]) {
                    throw CompileError(message: "the text after this placeholder starts with '\(Character(UnicodeScalar(next[0])))', which the placeholder itself can contain; use a narrower placeholder", column: columns[k])
                }
            case .hostPort:
                if next[0] == UInt8(ascii: ":") {
                    // `A:P: text` (Gitea): the port ends at the colon the daemon writes after it.
                    elements[k] = .hostPort(colonAfter: true)
                } else if ByteClass.contains(ByteClass.host, next[0]) {
                    throw CompileError(message: "the text after <ipport> starts with a character an address can contain", column: columns[k])
                }
            default: break
            }
        }

        // Free text in the middle: one slot, or two in the shape
        // PREFIX <free> MIDDLE <free> TAIL, where TAIL is bounded and ends the message.
        var splits: [Int] = []
        for (k, element) in elements.enumerated() where k + 1 < elements.count {
            if case .free = element { splits.append(k) }
        }
        if splits.count > 2 {
            throw CompileError(message: "at most two free-text placeholders (<user>, <text>, <any>) may stand before the end of a pattern", column: columns[splits[2]])
        }
        for s in splits {
            for k in (s + 1)..<elements.count {
                if case .quoted = elements[k] {
                    throw CompileError(message: "a <quoted> string cannot follow free text: it is not bounded", column: columns[k])
                }
            }
            guard case .literal = elements[s + 1] else {
                throw CompileError(message: "free text must be followed by literal text", column: columns[s])
            }
        }
        if splits.count == 2 {
            let last = elements.count - 1
            switch elements[last] {
            case .free, .structured:
                throw CompileError(message: "after a second free-text placeholder the pattern must end on bounded text (a tail found at its rightmost fit)", column: columns[last])
            default: break
            }
        }
        // A client slot after the first split means client text on both sides of
        // the daemon's text: every reading is tried, and only a unique one is taken.
        var unique = false
        if let first = splits.first {
            for k in (first + 1)..<elements.count {
                switch elements[k] {
                case .free(_, _, let client, _) where client: unique = true
                case .structured: unique = true
                default: break
                }
            }
        }
        func anchorOf(_ s: Int) -> (bytes: [UInt8], afterSpace: Bool) {
            guard case .literal(let lit) = elements[s + 1] else { return ([], false) }
            var anchor: [UInt8] = []
            var j = 0
            var afterSpace = false
            if lit.first == Self.space { afterSpace = true; j = 1 }
            while j < lit.count, lit[j] != Self.space { anchor.append(lit[j]); j += 1 }
            return (anchor, afterSpace)
        }
        let first: (bytes: [UInt8], afterSpace: Bool) = splits.first.map(anchorOf) ?? ([], false)
        let second: (bytes: [UInt8], afterSpace: Bool) = splits.count == 2 ? anchorOf(splits[1]) : ([], false)
        program = PatternProgram(elements: elements, split: splits.first, anchor: first.bytes, anchorAfterSpace: first.afterSpace,
                                 split2: splits.count == 2 ? splits[1] : nil, anchor2: second.bytes,
                                 anchor2AfterSpace: second.afterSpace, unique: unique)
    }

    /// Parses `<name>`, `<name?>`, `<user:class>` or `<user:100>` at `i`; nil when
    /// the text is a literal `<`.
    private static func placeholder(_ bytes: [UInt8], at i: Int) throws(CompileError)
        -> (Element, CaptureField?, Bool, Int)? {
        func lowercase(_ c: UInt8) -> Bool { c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") }
        func digit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        var j = i + 1
        var name: [UInt8] = []
        while j < bytes.count, lowercase(bytes[j]) { name.append(bytes[j]); j += 1 }
        guard !name.isEmpty, j < bytes.count else { return nil }
        var cls: [UInt8] = []
        var maxLength = Int.max
        if bytes[j] == UInt8(ascii: ":") {
            j += 1
            if j < bytes.count, digit(bytes[j]) {
                var value = 0
                while j < bytes.count, digit(bytes[j]), value < 1_000_000 { value = value * 10 + Int(bytes[j] - 48); j += 1 }
                maxLength = value
            } else {
                while j < bytes.count, lowercase(bytes[j]) { cls.append(bytes[j]); j += 1 }
                guard !cls.isEmpty else { return nil }
            }
        }
        var optional = false
        if j < bytes.count, bytes[j] == UInt8(ascii: "?") { optional = true; j += 1 }
        guard j < bytes.count, bytes[j] == UInt8(ascii: ">") else { return nil }
        let length = j + 1 - i
        let nameText = String(decoding: name, as: UTF8.self)
        let clsText = String(decoding: cls, as: UTF8.self)
        let column = i + 1
        if !cls.isEmpty && nameText != "user" {
            throw CompileError(message: "only <user> takes a class (<user:word>, <user:alnum>, <user:name>)", column: column)
        }
        if maxLength != Int.max {
            guard nameText == "user" || nameText == "text" else {
                throw CompileError(message: "only <user> and <text> take a maximum length (<user:100>)", column: column)
            }
            guard maxLength > 0 else { throw CompileError(message: "a maximum length is at least 1", column: column) }
        }
        let minimum = optional ? 0 : 1
        let element: Element
        var field: CaptureField?
        var address = false
        switch nameText {
        case "user":
            field = .user
            switch clsText {
            case "": element = .free(field: .user, nonEmpty: !optional, client: true, maxLength: maxLength)
            case "word": element = .token(field: .user, cls: ByteClass.nonSpace, min: minimum, max: 256)
            case "alnum": element = .token(field: .user, cls: ByteClass.alnum, min: minimum, max: 256)
            case "name": element = .token(field: .user, cls: ByteClass.service, min: minimum, max: 256)
            default: throw CompileError(message: "unknown class '\(clsText)' for <user>", column: column)
            }
        case "text": field = .text; element = .free(field: .text, nonEmpty: !optional, client: true, maxLength: maxLength)
        case "host": field = .host; element = .token(field: .host, cls: ByteClass.host, min: minimum, max: 255)
        case "ip": field = .host; address = true; element = .token(field: .host, cls: ByteClass.host, min: minimum, max: 64)
        case "ipport": address = true; element = .hostPort(colonAfter: false)
        case "port": field = .port; element = .token(field: .port, cls: ByteClass.digit, min: minimum, max: 5)
        case "method": field = .method; element = .token(field: .method, cls: ByteClass.method, min: minimum, max: 64)
        case "service": field = .service; element = .token(field: .service, cls: ByteClass.service, min: minimum, max: 64)
        case "word": element = .token(field: nil, cls: ByteClass.nonSpace, min: minimum, max: 1024)
        case "alnum": element = .token(field: nil, cls: ByteClass.alnum, min: minimum, max: 256)
        case "name": element = .token(field: nil, cls: ByteClass.host, min: minimum, max: 255)
        case "num": element = .token(field: nil, cls: ByteClass.digit, min: minimum, max: 20)
        case "opt": element = .token(field: nil, cls: ByteClass.nonSpace, min: 0, max: 1024)
        case "any": element = .free(field: nil, nonEmpty: false, client: false, maxLength: Int.max)
        case "quoted": element = .quoted
        case "time", "clftime": element = .time
        case "json": element = .structured(.json)
        case "kv": element = .structured(.kv)
        default:
            throw CompileError(message: "unknown placeholder <\(nameText)>; write \\< for a literal '<'", column: column)
        }
        return (element, field, address, length)
    }

    // MARK: - Matching

    /// Matches the whole message; on success `captures` holds the fields.
    func match(_ text: UnsafeRawBufferPointer, _ captures: inout Captures) -> MatchStatus {
        program.match(text, &captures)
    }
}
