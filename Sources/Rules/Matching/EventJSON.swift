import IPSightCore
import LogSources

/// A growable byte buffer for output. Writers reserve room once and then write
/// through a pointer (`ByteCursor`), so a line costs one access to the buffer's
/// state rather than one per field.
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

    /// Makes room for `extra` bytes and returns where they go.
    func reserve(_ extra: Int) -> UnsafeMutablePointer<UInt8> {
        if count + extra > capacity {
            var newCapacity = capacity * 2
            while newCapacity < count + extra { newCapacity *= 2 }
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
            grown.update(from: base, count: count)
            base.deallocate()
            base = grown
            capacity = newCapacity
        }
        return base + count
    }

    /// Commits bytes written after `reserve`.
    func advance(by n: Int) { count += n }
}

/// A write position inside reserved room.
struct ByteCursor {
    var p: UnsafeMutablePointer<UInt8>

    @inline(__always) mutating func put(_ b: UInt8) {
        p.pointee = b
        p += 1
    }

    @inline(__always) mutating func put(_ raw: UnsafeRawBufferPointer) {
        guard let source = raw.baseAddress, raw.count > 0 else { return }
        p.update(from: source.assumingMemoryBound(to: UInt8.self), count: raw.count)
        p += raw.count
    }

    @inline(__always) mutating func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }
}

/// The JSON line `ipsight parse` writes for an event, built directly as bytes.
public enum EventJSON {
    /// Appends `{"time":...,"host":...,...}` and a newline; `line`, when given,
    /// adds the input line number (for checking against a source file).
    public static func append(_ event: LoginEvent, to out: OutputBuffer, line: Int? = nil) {
        // Escaping makes a byte at most six ("\u00XX"); the rest is bounded.
        @inline(__always) func size(_ s: String?) -> Int { s?.utf8.count ?? 0 }
        let bound = 256 + 6 * (size(event.host) + size(event.service) + size(event.user) + size(event.ip)
            + size(event.method) + size(event.rule) + size(event.remoteHost))
        let start = out.reserve(bound)
        var c = ByteCursor(p: start)
        c.put(#"{"time":"#)
        if let t = event.time {
            c.put(0x22)
            c.p += CivilTime.writeRFC3339(t, to: c.p)
            c.put(0x22)
        } else {
            c.put("null")
        }
        c.put(#","host":"#)
        optional(event.host, &c)
        c.put(#","service":"#)
        string(event.service, &c)
        c.put(#","outcome":"#)
        c.put(event.outcome == .success ? #""success""# : #""failure""#)
        c.put(#","user":"#)
        optional(event.user, &c)
        c.put(#","ip":"#)
        optional(event.ip, &c)
        c.put(#","port":"#)
        if let p = event.port { integer(p, &c) } else { c.put("null") }
        c.put(#","method":"#)
        optional(event.method, &c)
        c.put(#","rule":"#)
        string(event.rule, &c)
        if let name = event.remoteHost {
            c.put(#","remote_host":"#)
            string(name, &c)
        }
        if let line {
            c.put(#","line":"#)
            integer(line, &c)
        }
        c.put("}\n")
        out.advance(by: start.distance(to: c.p))
    }

    /// One event as a JSON line without the newline.
    public static func line(_ event: LoginEvent) -> String {
        let out = OutputBuffer(capacity: 256)
        append(event, to: out)
        return String(decoding: UnsafeRawBufferPointer(rebasing: out.bytes.dropLast()), as: UTF8.self)
    }

    @inline(__always)
    static func optional(_ s: String?, _ c: inout ByteCursor) {
        if let s { string(s, &c) } else { c.put("null") }
    }

    static func integer(_ value: Int, _ c: inout ByteCursor) {
        if value < 0 { c.put(UInt8(ascii: "-")) }
        var v = value.magnitude
        var divisor: UInt = 1
        while divisor <= v / 10 { divisor *= 10 }
        while divisor > 0 {
            c.put(UInt8(48 + (v / divisor) % 10))
            v %= divisor
            divisor /= 10
        }
    }

    /// A JSON string literal; control characters, quotes and backslashes escaped.
    static func string(_ s: String, _ c: inout ByteCursor) {
        c.put(0x22)
        var text = s
        text.withUTF8 { buffer in
            var plain = true
            for b in buffer where b < 0x20 || b == 0x22 || b == 0x5C || b == 0x7F { plain = false; break }
            if plain {
                c.put(UnsafeRawBufferPointer(buffer))
                return
            }
            for b in buffer {
                switch b {
                case 0x22: c.put(0x5C); c.put(0x22)
                case 0x5C: c.put(0x5C); c.put(0x5C)
                case 0x0A: c.put(0x5C); c.put(UInt8(ascii: "n"))
                case 0x0D: c.put(0x5C); c.put(UInt8(ascii: "r"))
                case 0x09: c.put(0x5C); c.put(UInt8(ascii: "t"))
                case 0..<0x20, 0x7F:
                    c.put("\\u00")
                    c.put(hex(b >> 4))
                    c.put(hex(b & 15))
                default: c.put(b)
                }
            }
        }
        c.put(0x22)
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
