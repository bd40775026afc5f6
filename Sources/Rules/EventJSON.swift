import LogSources

/// The JSON line `ipsight parse` writes for an event, built directly as bytes.
public enum EventJSON {
    /// Appends `{"time":...,"host":...,...}` and a newline.
    public static func append(_ event: LoginEvent, to out: inout [UInt8]) {
        out.append(contentsOf: #"{"time":"#.utf8)
        if let t = event.time { string(CivilTime.rfc3339(t), &out) } else { null(&out) }
        out.append(contentsOf: #","host":"#.utf8)
        optional(event.host, &out)
        out.append(contentsOf: #","service":"#.utf8)
        string(event.service, &out)
        out.append(contentsOf: #","outcome":"#.utf8)
        string(event.outcome.rawValue, &out)
        out.append(contentsOf: #","user":"#.utf8)
        optional(event.user, &out)
        out.append(contentsOf: #","ip":"#.utf8)
        optional(event.ip, &out)
        out.append(contentsOf: #","port":"#.utf8)
        if let p = event.port { out.append(contentsOf: String(p).utf8) } else { null(&out) }
        out.append(contentsOf: #","method":"#.utf8)
        optional(event.method, &out)
        out.append(contentsOf: #","rule":"#.utf8)
        string(event.rule, &out)
        if let name = event.remoteHost {
            out.append(contentsOf: #","remote_host":"#.utf8)
            string(name, &out)
        }
        out.append(contentsOf: "}\n".utf8)
    }

    /// One event as a JSON line without the newline.
    public static func line(_ event: LoginEvent) -> String {
        var out: [UInt8] = []
        append(event, to: &out)
        out.removeLast()
        return String(decoding: out, as: UTF8.self)
    }

    @inline(__always)
    static func null(_ out: inout [UInt8]) { out.append(contentsOf: "null".utf8) }

    @inline(__always)
    static func optional(_ s: String?, _ out: inout [UInt8]) {
        if let s { string(s, &out) } else { null(&out) }
    }

    /// A JSON string literal; control characters, quotes and backslashes escaped.
    static func string(_ s: String, _ out: inout [UInt8]) {
        out.append(0x22)
        for c in s.utf8 {
            switch c {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0..<0x20, 0x7F:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex(c >> 4))
                out.append(hex(c & 15))
            default: out.append(c)
            }
        }
        out.append(0x22)
    }

    static func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
}
