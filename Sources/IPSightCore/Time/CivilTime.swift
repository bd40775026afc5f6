/// Calendar arithmetic on the proleptic Gregorian calendar, without Foundation:
/// the parsers call it for every line, and `Calendar` would dominate their cost.
public enum CivilTime {
    /// Days since 1970-01-01 for a year, month (1...12) and day (1...31).
    public static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The year, month and day of a day count since 1970-01-01.
    public static func date(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Seconds since the epoch for a UTC civil time.
    public static func epoch(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int {
        days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second
    }

    /// RFC 3339 UTC text (`2018-11-14T10:00:00Z`, with microseconds when not whole).
    public static func rfc3339(_ time: Double) -> String {
        var out: [UInt8] = []
        appendRFC3339(time, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the RFC 3339 text of `time` to a byte buffer.
    public static func appendRFC3339(_ time: Double, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxRFC3339Length) { buffer in
            let n = writeRFC3339(time, to: buffer.baseAddress!)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<n]))
        }
    }

    /// The longest text `writeRFC3339` writes (`-YYYYY-MM-DDTHH:MM:SS.ffffffZ` fits).
    public static let maxRFC3339Length = 32

    /// Writes the RFC 3339 text of `time` at `p` and returns its length; no allocation.
    public static func writeRFC3339(_ time: Double, to p: UnsafeMutablePointer<UInt8>) -> Int {
        // Years 0001 to 9999 only: a hostile timestamp cannot overflow the arithmetic.
        let clamped = time.isFinite ? min(max(time, -62_135_596_800), 253_402_300_799) : 0
        var seconds = clamped.rounded(.down)
        var micros = Int(((clamped - seconds) * 1_000_000).rounded())
        if micros >= 1_000_000 { micros -= 1_000_000; seconds += 1 }
        let whole = Int(seconds)
        let day = whole >= 0 ? whole / 86_400 : (whole - 86_399) / 86_400
        let rest = whole - day * 86_400
        let (y, m, d) = date(days: day)
        var i = 0
        @inline(__always) func put(_ value: Int, _ width: Int) {
            var v = value
            for k in stride(from: width - 1, through: 0, by: -1) {
                p[i + k] = UInt8(48 + v % 10)
                v /= 10
            }
            i += width
        }
        @inline(__always) func byte(_ c: UInt8) { p[i] = c; i += 1 }
        put(min(max(y, 0), 9999), 4); byte(UInt8(ascii: "-")); put(m, 2); byte(UInt8(ascii: "-")); put(d, 2)
        byte(UInt8(ascii: "T"))
        put(rest / 3600, 2); byte(UInt8(ascii: ":")); put(rest / 60 % 60, 2); byte(UInt8(ascii: ":")); put(rest % 60, 2)
        if micros != 0 { byte(UInt8(ascii: ".")); put(micros, 6) }
        byte(UInt8(ascii: "Z"))
        return i
    }
}
