import IPInsights
import LogSources

/// A growable byte buffer for output, appended to without per-call
/// uniqueness checks or generic dispatch (it is written once per field).
public final class OutputBuffer {
    public private(set) var base: UnsafeMutablePointer<UInt8>
    public private(set) var count = 0
    private var capacity: Int

    public init(capacity: Int = 1 << 17) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    public func removeAll() { count = 0 }

    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra <= capacity { return }
        var newCapacity = capacity * 2
        while newCapacity < count + extra { newCapacity *= 2 }
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        grown.update(from: base, count: count)
        base.deallocate()
        base = grown
        capacity = newCapacity
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    public func append(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        reserve(raw.count)
        (base + count).update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self), count: raw.count)
        count += raw.count
    }

    @inline(__always)
    public func append(_ text: StaticString) {
        text.withUTF8Buffer { append(UnsafeRawBufferPointer($0)) }
    }
}

/// The JSON line `ipsight parse` writes for an event, built directly as bytes.
public enum EventJSON {
    /// Appends `{"time":...,"host":...,...}` and a newline.
    /// `line`, when given, adds the input line number (for checking against a source file).
    public static func append(_ event: LoginEvent, to out: OutputBuffer, line: Int? = nil) {
        out.append(#"{"time":"#)
        if let t = event.time {
            var text: [UInt8] = []
            text.reserveCapacity(32)
            CivilTime.appendRFC3339(t, to: &text)
            out.append(0x22)
            text.withUnsafeBytes { out.append($0) }
            out.append(0x22)
        } else {
            out.append("null")
        }
        out.append(#","host":"#)
        optional(event.host, out)
        out.append(#","service":"#)
        string(event.service, out)
        out.append(#","outcome":"#)
        out.append(event.outcome == .success ? #""success""# : #""failure""#)
        out.append(#","user":"#)
        optional(event.user, out)
        out.append(#","ip":"#)
        optional(event.ip, out)
        out.append(#","port":"#)
        if let p = event.port { integer(p, out) } else { out.append("null") }
        out.append(#","method":"#)
        optional(event.method, out)
        out.append(#","rule":"#)
        string(event.rule, out)
        if let name = event.remoteHost {
            out.append(#","remote_host":"#)
            string(name, out)
        }
        if let line {
            out.append(#","line":"#)
            integer(line, out)
        }
        out.append("}\n")
    }

    /// One event as a JSON line without the newline.
    public static func line(_ event: LoginEvent) -> String {
        let out = OutputBuffer(capacity: 256)
        append(event, to: out)
        return String(decoding: UnsafeRawBufferPointer(rebasing: out.bytes.dropLast()), as: UTF8.self)
    }

    @inline(__always)
    static func optional(_ s: String?, _ out: OutputBuffer) {
        if let s { string(s, out) } else { out.append("null") }
    }

    static func integer(_ value: Int, _ out: OutputBuffer) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        var divisor: UInt = 1
        while divisor <= v / 10 { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(48 + (v / divisor) % 10))
            v %= divisor
            divisor /= 10
        }
    }

    /// A JSON string literal; control characters, quotes and backslashes escaped.
    static func string(_ s: String, _ out: OutputBuffer) {
        out.append(0x22)
        var text = s
        text.withUTF8 { buffer in
            var plain = true
            for c in buffer where c < 0x20 || c == 0x22 || c == 0x5C || c == 0x7F { plain = false; break }
            if plain {
                out.append(UnsafeRawBufferPointer(buffer))
                return
            }
            for c in buffer {
                switch c {
                case 0x22: out.append(0x5C); out.append(0x22)
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                case 0..<0x20, 0x7F:
                    out.append("\\u00")
                    out.append(hex(c >> 4))
                    out.append(hex(c & 15))
                default: out.append(c)
                }
            }
        }
        out.append(0x22)
    }

    static func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
}

extension IPAddress {
    /// The canonical text of an address captured as `raw`: a plain dotted quad
    /// (no leading zeros) is already canonical, which spares building the text.
    static func canonicalText(_ address: IPAddress, raw: UnsafeRawBufferPointer) -> String {
        if address.isIPv4, raw.count <= 15 {
            var plain = true
            var atStart = true
            for (i, b) in raw.enumerated() {
                if b == UInt8(ascii: ".") { atStart = true; continue }
                if b < 0x30 || b > 0x39 { plain = false; break }
                // A zero that starts a multi-digit octet is not canonical.
                if atStart && b == 0x30 && i + 1 < raw.count && raw[i + 1] != UInt8(ascii: ".") { plain = false; break }
                atStart = false
            }
            if plain { return String(decoding: raw, as: UTF8.self) }
        }
        return address.description
    }
}
