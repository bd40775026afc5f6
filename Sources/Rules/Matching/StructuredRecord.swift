import IPSightCore

/// The `<json>` or `<kv>` part of a message, read once, with its fields looked up by path.
///
/// Client text cannot move a field: JSON strings are escaped by their writer, and
/// key=value text is split only outside quotes. A key given twice in key=value text
/// means a value imitated the writer's separators (an unquoting writer and a crafted
/// user name): the record is refused rather than read either way.
enum StructuredRecord {
    case json(JSONValue)
    case kv([(key: String, value: String)])

    static func parse(_ kind: StructuredKind, _ bytes: UnsafeRawBufferPointer) -> StructuredRecord? {
        switch kind {
        case .json:
            var start = 0
            while start < bytes.count, bytes[start] == UInt8(ascii: " ") { start += 1 }
            guard start < bytes.count, bytes[start] == UInt8(ascii: "{"),
                  let document = try? JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[start...])),
                  case .object = document
            else { return nil }
            return .json(document)
        case .kv:
            return pairs(bytes).map { .kv($0) }
        }
    }

    /// `key=value key="quoted \" value"`, also `key=value, key=value`; bare words are
    /// skipped. nil when a quote is not closed or a key repeats.
    static func pairs(_ t: UnsafeRawBufferPointer) -> [(key: String, value: String)]? {
        var result: [(key: String, value: String)] = []
        let n = t.count
        var i = 0
        @inline(__always) func isKey(_ c: UInt8) -> Bool {
            ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A) || (c >= 0x30 && c <= 0x39)
                || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "@")
        }
        while i < n {
            while i < n, t[i] == UInt8(ascii: " ") || t[i] == UInt8(ascii: "\t") || t[i] == UInt8(ascii: ",") { i += 1 }
            guard i < n else { break }
            let keyStart = i
            while i < n, isKey(t[i]) { i += 1 }
            guard i > keyStart, i < n, t[i] == UInt8(ascii: "=") else {
                // A bare word (a level, a logger name): skip to the next space, honouring quotes.
                var quoted = false
                while i < n {
                    let c = t[i]
                    if quoted {
                        if c == UInt8(ascii: "\\") { i += 1 } else if c == UInt8(ascii: "\"") { quoted = false }
                    } else if c == UInt8(ascii: "\"") {
                        quoted = true
                    } else if c == UInt8(ascii: " ") {
                        break
                    }
                    i += 1
                }
                continue
            }
            let key = String(decoding: UnsafeRawBufferPointer(rebasing: t[keyStart..<i]), as: UTF8.self)
            i += 1
            var value: [UInt8] = []
            if i < n, t[i] == UInt8(ascii: "\"") {
                i += 1
                var closed = false
                while i < n {
                    let c = t[i]
                    if c == UInt8(ascii: "\\"), i + 1 < n {
                        let e = t[i + 1]
                        switch e {
                        case UInt8(ascii: "n"): value.append(10)
                        case UInt8(ascii: "t"): value.append(9)
                        default: value.append(e)
                        }
                        i += 2
                        continue
                    }
                    if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                    value.append(c)
                    i += 1
                }
                guard closed else { return nil }
            } else {
                let start = i
                while i < n, t[i] != UInt8(ascii: " "), t[i] != UInt8(ascii: "\t") { i += 1 }
                var end = i
                // `key=value, key=value`: the comma separates, it is not the value's.
                if end > start, t[end - 1] == UInt8(ascii: ",") { end -= 1 }
                value.append(contentsOf: UnsafeRawBufferPointer(rebasing: t[start..<end]))
            }
            if result.contains(where: { $0.key == key }) { return nil }
            guard let text = String(validating: value, as: UTF8.self) else { return nil }
            result.append((key, text))
        }
        return result
    }

    /// A field's value as text (numbers as written for integers, booleans as true/false).
    func text(_ path: String) -> String? {
        switch self {
        case .kv(let pairs):
            return pairs.first(where: { $0.key == path })?.value
        case .json(let document):
            guard let value = Self.lookup(document, path) else { return nil }
            switch value {
            case .string(let s): return s
            case .bool(let b): return b ? "true" : "false"
            case .number(let n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n)
            default: return nil
            }
        }
    }

    /// A JSON number field (a time in seconds or milliseconds, a port).
    func number(_ path: String) -> Double? {
        guard case .json(let document) = self, let value = Self.lookup(document, path) else { return nil }
        return value.numberValue
    }

    /// `a.b.c`: at each level the rest of the path is tried as one key first, so keys
    /// that hold dots themselves (`addr.remote` inside `fields`) are reached too.
    static func lookup(_ value: JSONValue, _ path: String) -> JSONValue? {
        if let direct = value[path] { return direct }
        var rest = Substring(path)
        var current = value
        while let dot = rest.firstIndex(of: ".") {
            guard let next = current[String(rest[..<dot])] else { return nil }
            current = next
            rest = rest[rest.index(after: dot)...]
            if let direct = current[String(rest)] { return direct }
        }
        return nil
    }
}
