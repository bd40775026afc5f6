/// An IPv4 or IPv6 address as one 128-bit key.
///
/// IPv4 addresses live in the IPv4-mapped range `::ffff:0:0/96`, so `1.2.3.4` and
/// `::ffff:1.2.3.4` are the same key: one account seen over both socket families
/// is one history. Parsing works on bytes and allocates nothing.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The high and low 64 bits, network order (the first written group is the top of `high`).
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(ipv4: UInt32) {
        self.high = 0
        self.low = 0xFFFF_0000_0000 | UInt64(ipv4)
    }

    public var isIPv4: Bool { high == 0 && (low >> 32) == 0xFFFF }

    /// The IPv4 address as a 32-bit number, when this is one.
    public var ipv4: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

    /// Byte `i` (0...15) of the 16-byte network-order form.
    @inline(__always)
    public func byte(_ i: Int) -> UInt8 {
        i < 8 ? UInt8(truncatingIfNeeded: high >> UInt64(56 - 8 * i))
              : UInt8(truncatingIfNeeded: low >> UInt64(120 - 8 * i))
    }

    /// The address with every bit after the first `length` bits cleared (length counts
    /// within the family: 0...32 for IPv4, 0...128 for IPv6).
    public func masked(to length: Int) -> IPAddress {
        let bits = isIPv4 ? 96 + min(max(length, 0), 32) : min(max(length, 0), 128)
        if bits >= 128 { return self }
        if bits >= 64 {
            let keep = bits - 64
            let mask: UInt64 = keep == 0 ? 0 : ~UInt64(0) << UInt64(64 - keep)
            return IPAddress(high: high, low: low & mask)
        }
        let mask: UInt64 = bits == 0 ? 0 : ~UInt64(0) << UInt64(64 - bits)
        return IPAddress(high: high & mask, low: 0)
    }

    /// The address one below this one (wrapping below zero).
    public var predecessor: IPAddress {
        low == 0 ? IPAddress(high: high &- 1, low: .max) : IPAddress(high: high, low: low - 1)
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    // MARK: Parsing

    /// Parses dotted-quad IPv4 or any RFC 4291 IPv6 text form (with `::`, an embedded
    /// IPv4 tail, and an ignored `%zone` suffix). Returns nil for anything else.
    public init?(_ text: some StringProtocol) {
        var s = String(text)
        guard let parsed = s.withUTF8({ IPAddress(bytes: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = parsed
    }

    public init?(bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty, bytes.count <= 64 else { return nil }
        var end = bytes.count
        if let zone = bytes.firstIndex(of: UInt8(ascii: "%")) {
            guard zone > 0, zone < bytes.count - 1 else { return nil }
            end = zone
        }
        var hasColon = false
        for i in 0..<end where bytes[i] == UInt8(ascii: ":") { hasColon = true; break }
        if !hasColon {
            guard end == bytes.count, let v4 = IPAddress.parseIPv4(bytes, 0, end) else { return nil }
            self.init(ipv4: v4)
            return
        }
        guard let v6 = IPAddress.parseIPv6(bytes, end) else { return nil }
        self = v6
    }

    /// Decimal octets, no leading zeros (which some stacks read as octal), each 0...255.
    static func parseIPv4(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UInt32? {
        var value: UInt32 = 0
        var octets = 0
        var i = start
        while i < end {
            var octet: UInt32 = 0
            var digits = 0
            let first = i
            while i < end, b[i] >= 0x30, b[i] <= 0x39 {
                octet = octet * 10 + UInt32(b[i] - 0x30)
                digits += 1
                i += 1
                if digits > 3 { return nil }
            }
            guard digits > 0, octet <= 255, !(digits > 1 && b[first] == 0x30) else { return nil }
            value = value << 8 | octet
            octets += 1
            if i == end { break }
            guard b[i] == UInt8(ascii: "."), octets < 4 else { return nil }
            i += 1
            guard i < end else { return nil }
        }
        return octets == 4 ? value : nil
    }

    static func parseIPv6(_ b: UnsafeRawBufferPointer, _ end: Int) -> IPAddress? {
        var groups = [UInt16](repeating: 0, count: 8)
        var count = 0
        var gap = -1          // index in `groups` where `::` stands
        var i = 0
        if end >= 2, b[0] == UInt8(ascii: ":") {
            guard b[1] == UInt8(ascii: ":") else { return nil }
            gap = 0
            i = 2
            if i == end { return IPAddress(high: 0, low: 0) }
        }
        while i < end {
            // An IPv4 tail takes the last two groups.
            var j = i
            var sawDot = false
            while j < end, b[j] != UInt8(ascii: ":") {
                if b[j] == UInt8(ascii: ".") { sawDot = true }
                j += 1
            }
            if sawDot {
                guard j == end, count <= 6, let v4 = parseIPv4(b, i, end) else { return nil }
                groups[count] = UInt16(v4 >> 16)
                groups[count + 1] = UInt16(v4 & 0xFFFF)
                count += 2
                i = end
                break
            }
            let digits = j - i
            guard digits >= 1, digits <= 4, count < 8 else { return nil }
            var value: UInt16 = 0
            for k in i..<j {
                guard let h = hexValue(b[k]) else { return nil }
                value = value << 4 | UInt16(h)
            }
            groups[count] = value
            count += 1
            i = j
            if i == end { break }
            // At a colon: `::` marks the gap, a single colon separates.
            i += 1
            if i < end, b[i] == UInt8(ascii: ":") {
                guard gap < 0 else { return nil }
                gap = count
                i += 1
                if i == end { break }
            } else if i == end {
                return nil   // trailing single colon
            }
        }
        if gap >= 0 {
            guard count < 8 else { return nil }
            let tail = count - gap
            for k in 0..<tail { groups[7 - k] = groups[count - 1 - k] }
            for k in gap..<(8 - tail) { groups[k] = 0 }
        } else {
            guard count == 8 else { return nil }
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for k in 0..<4 { high = high << 16 | UInt64(groups[k]) }
        for k in 4..<8 { low = low << 16 | UInt64(groups[k]) }
        return IPAddress(high: high, low: low)
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    // MARK: Formatting

    /// Dotted quad for IPv4 (including IPv4-mapped keys), RFC 5952 text for IPv6.
    public var description: String {
        if let v4 = ipv4 {
            return "\(v4 >> 24).\((v4 >> 16) & 255).\((v4 >> 8) & 255).\(v4 & 255)"
        }
        var groups = [UInt16](repeating: 0, count: 8)
        for k in 0..<4 { groups[k] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * k)) }
        for k in 0..<4 { groups[4 + k] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * k)) }
        // RFC 5952: compress the longest run of two or more zero groups, the first on a tie.
        var bestStart = -1, bestLength = 1
        var k = 0
        while k < 8 {
            if groups[k] == 0 {
                var e = k
                while e < 8, groups[e] == 0 { e += 1 }
                if e - k > bestLength { bestStart = k; bestLength = e - k }
                k = e
            } else {
                k += 1
            }
        }
        var out = ""
        k = 0
        while k < 8 {
            if k == bestStart {
                out += "::"
                k += bestLength
                continue
            }
            if !out.isEmpty, !out.hasSuffix(":") { out += ":" }
            out += String(groups[k], radix: 16)
            k += 1
        }
        return out
    }

    /// The network containing this address at `length` bits, as `a.b.c.d/n` or `x::/n`.
    public func networkDescription(length: Int) -> String {
        "\(masked(to: length))/\(length)"
    }
}
