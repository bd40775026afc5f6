/// Byte classes of the pattern language's tokens, as bits in one 256-entry table
/// so a token scan is one load and one test per byte.
enum ByteClass {
    static let nonSpace: UInt8 = 1
    static let digit: UInt8 = 2
    /// Address or host name: letters, digits, `.`, `:`, `%`, `_`, `-`.
    static let host: UInt8 = 4
    /// A PAM service or program name: letters, digits, `.`, `_`, `-`, `@`.
    static let service: UInt8 = 8
    static let alnum: UInt8 = 16
    /// An authentication method: letters, digits, `-`, `/`, `_`, `.`, `@`, `+`.
    static let method: UInt8 = 32
    /// Not a class of the table: a flag on an address token whose pattern writes a
    /// `.` right after it (`IP: <ip>. Username:`), so a run's final dot is left to it.
    static let trailingDot: UInt8 = 64

    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0, count: 256)
        for b in 0..<256 {
            let c = UInt8(b)
            var bits: UInt8 = 0
            if c != 0x20 && c != 0x09 { bits |= nonSpace }
            let isDigit = c >= 0x30 && c <= 0x39
            let isAlpha = (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A
            if isDigit { bits |= digit }
            if isDigit || isAlpha { bits |= alnum | host | service }
            if c == UInt8(ascii: ".") || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") { bits |= host | service }
            if c == UInt8(ascii: ":") || c == UInt8(ascii: "%") { bits |= host }
            if c == UInt8(ascii: "@") { bits |= service }
            if isDigit || isAlpha || c == UInt8(ascii: "-") || c == UInt8(ascii: "/") || c == UInt8(ascii: "_")
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "@") || c == UInt8(ascii: "+") { bits |= method }
            t[b] = bits
        }
        return t
    }()

    /// The table in memory that is never freed, for the matcher's inner loops.
    nonisolated(unsafe) static let pointer: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        p.initialize(from: table, count: 256)
        return UnsafePointer(p)
    }()

    static func contains(_ cls: UInt8, _ byte: UInt8) -> Bool {
        table[Int(byte)] & cls != 0
    }
}
