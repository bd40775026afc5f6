#if canImport(Glibc)
import IPSightCore
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The parts of a syslog line before the message, as byte offsets into the line.
public struct SyslogHeader: Sendable, Equatable {
    public var time: Double?
    public var host: Range<Int>?
    public var identifier: Range<Int>?
    public var pid: Int?
    /// Where the message starts; it runs to the end of the line.
    public var messageStart: Int
}

/// How to read a timestamp that carries no zone (traditional syslog).
public enum SyslogTimeZone: Sendable, Equatable {
    case utc
    /// The machine's zone (`TZ`, `/etc/localtime`), as rsyslog wrote it.
    case local
    case offset(seconds: Int)
}

/// Parses the header of traditional (`Nov  4 10:00:00 host sshd[1]: ...`),
/// high-precision RFC 3339 (`2018-11-14T10:00:00.000000+00:00 host sshd[1]: ...`)
/// and RFC 5424 (`<34>1 2018-11-14T10:00:00Z host sshd 1 - - ...`) syslog lines.
///
/// Traditional timestamps have no year: each gets the latest year that does not
/// put it more than a day ahead of "now" (the wall clock, or a fixed reference in
/// tests), so on 6 December a `Feb 25` line is from this February, and December
/// lines read on 2 January are from the year before. Replaying an old file with
/// `firstYear`, the first line gets that year and each later line the earliest
/// year that does not put it more than a day before the line it follows.
public struct SyslogHeaderParser: Sendable {
    public var timeZone: SyslogTimeZone
    /// "Now" for placing traditional timestamps; nil reads the wall clock.
    public var reference: Double?
    /// The year of the first traditional timestamp, for replaying an old file;
    /// later lines follow from it.
    public var firstYear: Int? {
        didSet { replaying = firstYear != nil; previous = nil }
    }

    private var replaying = false
    /// The previous traditional timestamp, which a replayed line follows.
    private var previous: Double?
    private var zoneCacheHour = Int.min
    /// The year given to the previous line's month and day: the same date gets the same year.
    private var yearCache = (month: 0, day: 0, year: 0)
    private var zoneCacheOffset = 0

    public init(timeZone: SyslogTimeZone = .local, reference: Double? = nil) {
        self.timeZone = timeZone
        self.reference = reference
    }

    /// The header of `line`, or nil when it does not start like a syslog line.
    public mutating func parse(_ line: UnsafeRawBufferPointer) -> SyslogHeader? {
        var scanner = ByteScanner(line)
        if scanner.peek() == UInt8(ascii: "<") {
            // A priority prefix, as on the network or in some files.
            let save = scanner.index
            scanner.index += 1
            let digits = scanner.digits(max: 3)
            if digits == nil || !scanner.take(UInt8(ascii: ">")) { scanner.index = save }
            if digits != nil, scanner.index != save, scanner.peek() == UInt8(ascii: "1"),
               scanner.peek(1) == UInt8(ascii: " ") {
                scanner.index += 2
                return parse5424(&scanner)
            }
        }
        let time: Double
        if let t = traditionalTime(&scanner) {
            time = t
        } else if let t = isoTime(&scanner) {
            time = t
        } else {
            return nil
        }
        guard scanner.take(UInt8(ascii: " ")) else { return nil }
        guard let host = scanner.token(), scanner.take(UInt8(ascii: " ")) else { return nil }
        var header = SyslogHeader(time: time, host: host, identifier: nil, pid: nil, messageStart: scanner.index)
        parseTag(&scanner, into: &header)
        return header
    }

    /// A lone RFC 3339 timestamp (the whole text), for JSON fields.
    public mutating func parseTimestamp(_ text: UnsafeRawBufferPointer) -> Double? {
        var scanner = ByteScanner(text)
        guard let t = isoTime(&scanner), scanner.index == text.count else { return nil }
        return t
    }

    // MARK: - Tag

    /// `ident[pid]: ` or `ident: `; without a colon there is no identifier and the
    /// message is everything after the host.
    private func parseTag(_ scanner: inout ByteScanner, into header: inout SyslogHeader) {
        let start = scanner.index
        var i = start
        let end = min(scanner.count, start + 64)
        while i < end {
            let c = scanner[i]
            if c == UInt8(ascii: "[") || c == UInt8(ascii: ":") || c == UInt8(ascii: " ") { break }
            i += 1
        }
        guard i > start, i < scanner.count else { return }
        var pid: Int?
        var j = i
        if scanner[j] == UInt8(ascii: "[") {
            scanner.index = j + 1
            guard let p = scanner.digits(max: 10), scanner.take(UInt8(ascii: "]")) else { scanner.index = start; return }
            pid = p
            j = scanner.index
        }
        guard j < scanner.count, scanner[j] == UInt8(ascii: ":") else { scanner.index = start; return }
        j += 1
        if j < scanner.count, scanner[j] == UInt8(ascii: " ") { j += 1 }
        header.identifier = start..<i
        header.pid = pid
        header.messageStart = j
        scanner.index = j
    }

    // MARK: - RFC 5424

    private mutating func parse5424(_ scanner: inout ByteScanner) -> SyslogHeader? {
        var time: Double?
        if scanner.take(UInt8(ascii: "-")) {
            time = nil
        } else {
            guard let t = isoTime(&scanner) else { return nil }
            time = t
        }
        guard scanner.take(UInt8(ascii: " ")), let host = scanner.token(), scanner.take(UInt8(ascii: " ")),
              let app = scanner.token(), scanner.take(UInt8(ascii: " ")),
              let procid = scanner.token(), scanner.take(UInt8(ascii: " ")),
              scanner.token() != nil, scanner.take(UInt8(ascii: " "))
        else { return nil }
        // Structured data: "-" or one or more [id param="value" ...] elements.
        if !scanner.take(UInt8(ascii: "-")) {
            var elements = 0
            while scanner.peek() == UInt8(ascii: "[") {
                guard skipStructuredElement(&scanner) else { return nil }
                elements += 1
            }
            if elements == 0 { return nil }
        }
        if scanner.index < scanner.count {
            guard scanner.take(UInt8(ascii: " ")) else { return nil }
        }
        // A UTF-8 byte order mark may open the message.
        if scanner.peek() == 0xEF, scanner.peek(1) == 0xBB, scanner.peek(2) == 0xBF { scanner.index += 3 }
        let bytes = scanner.bytes
        func isNil(_ r: Range<Int>) -> Bool { r.count == 1 && bytes[r.lowerBound] == UInt8(ascii: "-") }
        var pid: Int?
        if !isNil(procid) {
            var p = ByteScanner(scanner.bytes)
            p.index = procid.lowerBound
            if let value = p.digits(max: 10), p.index == procid.upperBound { pid = value }
        }
        return SyslogHeader(time: time, host: isNil(host) ? nil : host, identifier: isNil(app) ? nil : app,
                            pid: pid, messageStart: scanner.index)
    }

    /// Skips `[...]` honouring `\"`, `\\` and `\]` inside quoted values; linear.
    private func skipStructuredElement(_ scanner: inout ByteScanner) -> Bool {
        scanner.index += 1
        var quoted = false
        while scanner.index < scanner.count {
            let c = scanner[scanner.index]
            scanner.index += 1
            if quoted {
                if c == UInt8(ascii: "\\") { scanner.index += 1 } else if c == UInt8(ascii: "\"") { quoted = false }
            } else if c == UInt8(ascii: "\"") {
                quoted = true
            } else if c == UInt8(ascii: "]") {
                return true
            }
        }
        return false
    }

    // MARK: - Timestamps

    /// `Nov  4 10:00:00` or `Nov 04 10:00:00`.
    private mutating func traditionalTime(_ scanner: inout ByteScanner) -> Double? {
        let start = scanner.index
        guard scanner.count - start >= 15, let month = Self.monthNumber(scanner[start], scanner[start + 1], scanner[start + 2]),
              scanner[start + 3] == UInt8(ascii: " ")
        else { return nil }
        var i = start + 4
        var day = 0
        if scanner[i] == UInt8(ascii: " ") {
            i += 1
            guard let d = Self.digit(scanner[i]) else { return nil }
            day = d
            i += 1
        } else {
            guard let d1 = Self.digit(scanner[i]), let d2 = Self.digit(scanner[i + 1]) else { return nil }
            day = d1 * 10 + d2
            i += 2
        }
        guard i + 9 <= scanner.count, scanner[i] == UInt8(ascii: " ") else { return nil }
        scanner.index = i + 1
        guard let (hour, minute, second) = clock(&scanner), day >= 1, day <= 31 else {
            scanner.index = start
            return nil
        }
        var fraction = 0.0
        if scanner.peek() == UInt8(ascii: ".") { fraction = self.fraction(&scanner) }
        let year: Int
        if let first = firstYear, previous == nil {
            year = first
        } else if yearCache.month == month && yearCache.day == day {
            year = yearCache.year
        } else {
            year = inferYear(month: month, day: day, hour: hour, minute: minute, second: second)
        }
        yearCache = (month, day, year)
        guard day <= CivilTime.daysInMonth(year: year, month: month) else { scanner.index = start; return nil }
        let local = CivilTime.epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        let time = Double(local - zoneOffset(localEpoch: local)) + fraction
        if replaying { previous = time }
        return time
    }

    /// The wall clock, unless a fixed reference was given.
    private var now: Double {
        if let reference { return reference }
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec)
    }

    /// The latest year that puts the date at most a day after now; when replaying,
    /// the earliest that puts it at most a day before the previous line.
    private func inferYear(month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Int {
        let day1 = 86_400.0
        func time(_ year: Int) -> Double? {
            // 29 February exists only in leap years: such a year is skipped, not bent.
            guard day <= CivilTime.daysInMonth(year: year, month: month) else { return nil }
            return Double(CivilTime.epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second))
        }
        if replaying, let previous {
            let year = CivilTime.date(days: Int((previous / day1).rounded(.down))).year
            for candidate in year...(year + 8) {
                if let t = time(candidate), t >= previous - day1 { return candidate }
            }
            return year
        }
        let limit = now + day1
        let year = CivilTime.date(days: Int((limit / day1).rounded(.down))).year
        for candidate in stride(from: year, through: year - 8, by: -1) {
            if let t = time(candidate), t <= limit { return candidate }
        }
        return year
    }

    /// `2018-11-14T10:00:00[.ffffff](Z|+hh:mm|-hh:mm|+hhmm)`; a space instead of `T` is accepted.
    private func isoTime(_ scanner: inout ByteScanner) -> Double? {
        let start = scanner.index
        guard scanner.count - start >= 20 else { return nil }
        func num(_ at: Int, _ width: Int) -> Int? {
            var v = 0
            for k in 0..<width {
                guard let d = Self.digit(scanner[at + k]) else { return nil }
                v = v * 10 + d
            }
            return v
        }
        guard let year = num(start, 4), scanner[start + 4] == UInt8(ascii: "-"), let month = num(start + 5, 2),
              scanner[start + 7] == UInt8(ascii: "-"), let day = num(start + 8, 2),
              scanner[start + 10] == UInt8(ascii: "T") || scanner[start + 10] == UInt8(ascii: " "),
              (1...12).contains(month), day >= 1, day <= CivilTime.daysInMonth(year: year, month: month)
        else { return nil }
        scanner.index = start + 11
        guard let (hour, minute, second) = clock(&scanner) else { scanner.index = start; return nil }
        var fraction = 0.0
        if scanner.peek() == UInt8(ascii: ".") { fraction = self.fraction(&scanner) }
        var offset = 0
        switch scanner.peek() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            scanner.index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = scanner.peek() == UInt8(ascii: "-") ? -1 : 1
            let i = scanner.index + 1
            // `+01:00`, or `+0100` as `journalctl -o short-iso` writes it.
            let colon = i + 2 < scanner.count && scanner[i + 2] == UInt8(ascii: ":") ? 1 : 0
            guard i + 4 + colon <= scanner.count, let hh = num(i, 2), let mm = num(i + 2 + colon, 2), hh < 24, mm < 60
            else { scanner.index = start; return nil }
            offset = sign * (hh * 3600 + mm * 60)
            scanner.index = i + 4 + colon
        default:
            scanner.index = start
            return nil
        }
        let t = CivilTime.epoch(year: year, month: month, day: day, hour: hour, minute: minute, second: second) - offset
        return Double(t) + fraction
    }

    /// `HH:MM:SS` with range checks (a leap second 60 is accepted).
    private func clock(_ scanner: inout ByteScanner) -> (Int, Int, Int)? {
        let i = scanner.index
        guard i + 8 <= scanner.count, let h1 = Self.digit(scanner[i]), let h2 = Self.digit(scanner[i + 1]),
              scanner[i + 2] == UInt8(ascii: ":"), let m1 = Self.digit(scanner[i + 3]), let m2 = Self.digit(scanner[i + 4]),
              scanner[i + 5] == UInt8(ascii: ":"), let s1 = Self.digit(scanner[i + 6]), let s2 = Self.digit(scanner[i + 7])
        else { return nil }
        let (h, m, s) = (h1 * 10 + h2, m1 * 10 + m2, s1 * 10 + s2)
        guard h < 24, m < 60, s <= 60 else { return nil }
        scanner.index = i + 8
        return (h, m, s)
    }

    /// `.ffffff` (at most nine digits are significant; more are skipped).
    private func fraction(_ scanner: inout ByteScanner) -> Double {
        scanner.index += 1
        var value = 0.0
        var scale = 0.1
        var count = 0
        while let c = scanner.peek(), let d = Self.digit(c), count < 30 {
            if count < 9 { value += Double(d) * scale; scale /= 10 }
            scanner.index += 1
            count += 1
        }
        return value
    }

    private mutating func zoneOffset(localEpoch: Int) -> Int {
        switch timeZone {
        case .utc: return 0
        case .offset(let seconds): return seconds
        case .local:
            // The offset changes at most a few times a year: cache it per hour.
            let hour = localEpoch / 3600
            if hour == zoneCacheHour { return zoneCacheOffset }
            var t = time_t(localEpoch)
            var parts = tm()
            localtime_r(&t, &parts)
            // One correction step: the offset at the instant local - offset.
            var guess = time_t(localEpoch - Int(parts.tm_gmtoff))
            localtime_r(&guess, &parts)
            zoneCacheHour = hour
            zoneCacheOffset = Int(parts.tm_gmtoff)
            return zoneCacheOffset
        }
    }

    static func digit(_ c: UInt8) -> Int? {
        c >= 48 && c <= 57 ? Int(c - 48) : nil
    }

    public static func monthNumber(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> Int? {
        switch (a | 0x20, b | 0x20, c | 0x20) {
        case (0x6A, 0x61, 0x6E): return 1 // jan
        case (0x66, 0x65, 0x62): return 2 // feb
        case (0x6D, 0x61, 0x72): return 3 // mar
        case (0x61, 0x70, 0x72): return 4 // apr
        case (0x6D, 0x61, 0x79): return 5 // may
        case (0x6A, 0x75, 0x6E): return 6 // jun
        case (0x6A, 0x75, 0x6C): return 7 // jul
        case (0x61, 0x75, 0x67): return 8 // aug
        case (0x73, 0x65, 0x70): return 9 // sep
        case (0x6F, 0x63, 0x74): return 10 // oct
        case (0x6E, 0x6F, 0x76): return 11 // nov
        case (0x64, 0x65, 0x63): return 12 // dec
        default: return nil
        }
    }
}

/// A cursor over a line's bytes with bounds-checked steps.
struct ByteScanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var count: Int { bytes.count }
    subscript(i: Int) -> UInt8 { bytes[i] }

    func peek(_ ahead: Int = 0) -> UInt8? {
        index + ahead < bytes.count ? bytes[index + ahead] : nil
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    mutating func digits(max: Int) -> Int? {
        var value = 0
        var n = 0
        while index < bytes.count, n < max, bytes[index] >= 48, bytes[index] <= 57 {
            value = value * 10 + Int(bytes[index] - 48)
            index += 1
            n += 1
        }
        return n == 0 ? nil : value
    }

    /// A non-empty run of bytes up to the next space or the end.
    mutating func token() -> Range<Int>? {
        let start = index
        while index < bytes.count, bytes[index] != UInt8(ascii: " ") { index += 1 }
        return index > start ? start..<index : nil
    }
}

extension SyslogTimeZone {
    /// The offset from UTC, in seconds, of a civil time in this zone (given as if it
    /// were UTC). Uncached: for timestamps read from services' own files.
    public func offset(localEpoch: Int) -> Int {
        switch self {
        case .utc: return 0
        case .offset(let seconds): return seconds
        case .local:
            var t = time_t(localEpoch)
            var parts = tm()
            localtime_r(&t, &parts)
            // One correction step: the offset at the instant local - offset.
            var guess = time_t(localEpoch - Int(parts.tm_gmtoff))
            localtime_r(&guess, &parts)
            return Int(parts.tm_gmtoff)
        }
    }
}
