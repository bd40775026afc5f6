import LogSources

/// The fields a pattern can capture into a login event.
public enum CaptureField: String, Sendable {
    case user, host, port, method, service
}

/// Where each captured field lies in the message, as byte ranges.
struct Captures {
    var user: Range<Int>?
    var host: Range<Int>?
    var port: Range<Int>?
    var method: Range<Int>?
    var service: Range<Int>?
    var time: Double?
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
        case hostPort
        case free(field: CaptureField?, nonEmpty: Bool)
        case quoted
        case clfTime
    }

    public let source: String
    /// `<ip>` rather than `<host>`: a host name is not accepted.
    public let requiresAddress: Bool
    public let fields: Set<CaptureField>
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
                if let field {
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

        guard elements.contains(where: { if case .literal(let l) = $0 { return l.contains { $0 != Self.space } } else { return false } })
        else { throw CompileError(message: "a pattern needs some literal text of the daemon's to anchor on", column: 1) }

        // Word-like placeholders must be followed by text that starts outside their class.
        for (k, element) in elements.enumerated() where k + 1 < elements.count {
            guard case .literal(let next) = elements[k + 1] else { continue }
            switch element {
            case .token(_, let cls, _, _):
                if ByteClass.contains(cls, next[0]) {
                    throw CompileError(message: "the text after this placeholder starts with '\(Character(UnicodeScalar(next[0])))', which the placeholder itself can contain; use a narrower placeholder", column: columns[k])
                }
            case .hostPort:
                if ByteClass.contains(ByteClass.host, next[0]) {
                    throw CompileError(message: "the text after <ipport> starts with a character an address can contain", column: columns[k])
                }
            default: break
            }
        }

        var split: Int?
        for (k, element) in elements.enumerated() {
            if case .free = element, k + 1 < elements.count {
                if split != nil {
                    throw CompileError(message: "at most one free-text placeholder (<user>, <any>) may stand before the end of a pattern", column: columns[k])
                }
                split = k
            }
        }
        // The non-space text the element after `split` starts with, searched from the right.
        var anchor: [UInt8] = []
        var afterSpace = false
        if let s = split {
            for k in (s + 1)..<elements.count {
                if case .quoted = elements[k] {
                    throw CompileError(message: "a <quoted> string cannot follow free text: it is not bounded", column: columns[k])
                }
            }
            guard case .literal(let lit) = elements[s + 1] else {
                throw CompileError(message: "free text must be followed by literal text", column: columns[s])
            }
            var j = 0
            if lit.first == Self.space { afterSpace = true; j = 1 }
            while j < lit.count, lit[j] != Self.space { anchor.append(lit[j]); j += 1 }
        }
        program = PatternProgram(elements: elements, split: split, anchor: anchor, anchorAfterSpace: afterSpace)
    }

    /// Parses `<name>`, `<name?>` or `<user:class>` at `i`; nil when the text is a literal `<`.
    private static func placeholder(_ bytes: [UInt8], at i: Int) throws(CompileError)
        -> (Element, CaptureField?, Bool, Int)? {
        var j = i + 1
        var name: [UInt8] = []
        while j < bytes.count, bytes[j] >= UInt8(ascii: "a"), bytes[j] <= UInt8(ascii: "z") { name.append(bytes[j]); j += 1 }
        guard !name.isEmpty, j < bytes.count else { return nil }
        var cls: [UInt8] = []
        if bytes[j] == UInt8(ascii: ":") {
            j += 1
            while j < bytes.count, bytes[j] >= UInt8(ascii: "a"), bytes[j] <= UInt8(ascii: "z") { cls.append(bytes[j]); j += 1 }
            guard !cls.isEmpty else { return nil }
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
        let minimum = optional ? 0 : 1
        let element: Element
        var field: CaptureField?
        var address = false
        switch nameText {
        case "user":
            field = .user
            switch clsText {
            case "": element = .free(field: .user, nonEmpty: !optional)
            case "word": element = .token(field: .user, cls: ByteClass.nonSpace, min: minimum, max: 256)
            case "alnum": element = .token(field: .user, cls: ByteClass.alnum, min: minimum, max: 256)
            case "name": element = .token(field: .user, cls: ByteClass.service, min: minimum, max: 256)
            default: throw CompileError(message: "unknown class '\(clsText)' for <user>", column: column)
            }
        case "host": field = .host; element = .token(field: .host, cls: ByteClass.host, min: minimum, max: 255)
        case "ip": field = .host; address = true; element = .token(field: .host, cls: ByteClass.host, min: minimum, max: 64)
        case "ipport": address = true; element = .hostPort
        case "port": field = .port; element = .token(field: .port, cls: ByteClass.digit, min: minimum, max: 5)
        case "method": field = .method; element = .token(field: .method, cls: ByteClass.method, min: minimum, max: 64)
        case "service": field = .service; element = .token(field: .service, cls: ByteClass.service, min: minimum, max: 64)
        case "word": element = .token(field: nil, cls: ByteClass.nonSpace, min: minimum, max: 1024)
        case "alnum": element = .token(field: nil, cls: ByteClass.alnum, min: minimum, max: 256)
        case "name": element = .token(field: nil, cls: ByteClass.host, min: minimum, max: 255)
        case "num": element = .token(field: nil, cls: ByteClass.digit, min: minimum, max: 20)
        case "opt": element = .token(field: nil, cls: ByteClass.nonSpace, min: 0, max: 1024)
        case "any": element = .free(field: nil, nonEmpty: false)
        case "quoted": element = .quoted
        case "clftime": element = .clfTime
        default:
            throw CompileError(message: "unknown placeholder <\(nameText)>; write \\< for a literal '<'", column: column)
        }
        return (element, field, address, length)
    }

    // MARK: - Matching

    /// Matches the whole message; on success `captures` holds the fields.
    func match(_ text: UnsafeRawBufferPointer, _ captures: inout Captures) -> Bool {
        program.match(text, &captures)
    }

    /// `14/Nov/2018:10:00:00 +0000`.
    static func clfTime(_ t: UnsafeRawBufferPointer, _ p: Int) -> (Double, Int)? {
        guard p + 26 <= t.count else { return nil }
        func num(_ at: Int, _ width: Int) -> Int? {
            var v = 0
            for k in 0..<width {
                let c = t[at + k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let day = num(p, 2), t[p + 2] == UInt8(ascii: "/"),
              let month = SyslogHeaderParser.monthNumber(t[p + 3], t[p + 4], t[p + 5]), t[p + 6] == UInt8(ascii: "/"),
              let year = num(p + 7, 4), t[p + 11] == UInt8(ascii: ":"), let hour = num(p + 12, 2),
              t[p + 14] == UInt8(ascii: ":"), let minute = num(p + 15, 2), t[p + 17] == UInt8(ascii: ":"),
              let second = num(p + 18, 2), t[p + 20] == Self.space,
              t[p + 21] == UInt8(ascii: "+") || t[p + 21] == UInt8(ascii: "-"),
              let zh = num(p + 22, 2), let zm = num(p + 24, 2),
              day >= 1, day <= CivilTime.daysInMonth(year: year, month: month), hour < 24, minute < 60, second <= 60
        else { return nil }
        let offset = (zh * 3600 + zm * 60) * (t[p + 21] == UInt8(ascii: "-") ? -1 : 1)
        let epoch = CivilTime.epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second) - offset
        return (Double(epoch), p + 26)
    }
}
