#if canImport(Glibc)
import IPSightCore
import Glibc
#endif
import LogSources

/// A timestamp read from a log line by `<time>` or a `time-field`.
struct ParsedTime: Sendable, Equatable {
    /// Seconds since the epoch; for a `local` time, the civil time read as if it were UTC.
    var seconds: Double
    /// No zone was written: the machine's local time (or the `--utc` choice).
    var local: Bool
    /// No year was written (`Jan  2 03:04:05`): `seconds` holds the year 2000.
    var yearless: Bool
}

/// The timestamp forms services write in their own log files, recognised by their
/// first characters so that reading one never backtracks:
///
/// | form | written by |
/// |---|---|
/// | `2024-01-02T03:04:05[.123\|,123][Z\|+01:00\|+0100\|+01\| UTC\| GMT]`, also with a space, or a padded `2024-01-02  3:04:05` | most services, MariaDB, Keycloak, PostgreSQL |
/// | `2024/01/02 03:04:05[.123]` | nginx's error log, Gitea |
/// | `Tue Jan  2 03:04:05[.123456] 2024` | ctime: vsftpd.log, Apache's error log |
/// | `02/Jan/2024:03:04:05 +0000` | access logs |
/// | `02-Jan-2024 03:04:05[.123]` | Java services |
/// | `Jan  2 03:04:05[.123]` | syslog-like; the year is inferred |
enum TimeText {
    static func parse(_ t: UnsafeRawBufferPointer, at p: Int) -> (ParsedTime, Int)? {
        let n = t.count
        guard p < n else { return nil }
        @inline(__always) func isDigit(_ i: Int) -> Bool { i < n && t[i] >= 48 && t[i] <= 57 }
        @inline(__always) func isLetter(_ i: Int) -> Bool { i < n && (t[i] | 0x20) >= 0x61 && (t[i] | 0x20) <= 0x7A }
        if isDigit(p) && isDigit(p + 1) {
            if isDigit(p + 2) && isDigit(p + 3) && p + 4 < n {
                if t[p + 4] == UInt8(ascii: "-") || t[p + 4] == UInt8(ascii: "/") { return yearFirst(t, p) }
                return nil
            }
            if p + 2 < n && t[p + 2] == UInt8(ascii: "/") { return clf(t, p) }
            if p + 2 < n && t[p + 2] == UInt8(ascii: "-") { return dayMonthYear(t, p) }
            return nil
        }
        if isLetter(p) && isLetter(p + 1) && isLetter(p + 2) && p + 4 < n && t[p + 3] == UInt8(ascii: " ") {
            if isLetter(p + 4) { return ctime(t, p) }
            return syslog(t, p)
        }
        return nil
    }

    // MARK: - Pieces

    private static func number(_ t: UnsafeRawBufferPointer, _ at: Int, _ width: Int) -> Int? {
        guard at + width <= t.count else { return nil }
        var v = 0
        for k in 0..<width {
            let c = t[at + k]
            guard c >= 48, c <= 57 else { return nil }
            v = v * 10 + Int(c - 48)
        }
        return v
    }

    /// `hh:mm:ss` (or `h:mm:ss` when `padded`), returning seconds of the day and the end.
    private static func clock(_ t: UnsafeRawBufferPointer, _ p: Int, oneDigitHour: Bool = false) -> (Int, Int)? {
        var i = p
        var hour: Int
        if oneDigitHour, let h = number(t, i, 1), i + 1 < t.count, t[i + 1] == UInt8(ascii: ":") {
            hour = h
            i += 1
        } else {
            guard let h = number(t, i, 2) else { return nil }
            hour = h
            i += 2
        }
        guard i + 6 <= t.count, t[i] == UInt8(ascii: ":"), let minute = number(t, i + 1, 2),
              t[i + 3] == UInt8(ascii: ":"), let second = number(t, i + 4, 2),
              hour < 24, minute < 60, second <= 60
        else { return nil }
        return (hour * 3600 + minute * 60 + second, i + 6)
    }

    /// `.123` or `,123`: at most nine digits are significant, at most 30 are read.
    private static func fraction(_ t: UnsafeRawBufferPointer, _ p: Int) -> (Double, Int) {
        guard p + 1 < t.count, t[p] == UInt8(ascii: ".") || t[p] == UInt8(ascii: ","),
              t[p + 1] >= 48, t[p + 1] <= 57 else { return (0, p) }
        var i = p + 1
        var value = 0.0
        var scale = 0.1
        while i < t.count, t[i] >= 48, t[i] <= 57, i - p <= 30 {
            if i - p <= 9 { value += Double(t[i] - 48) * scale; scale /= 10 }
            i += 1
        }
        return (value, i)
    }

    /// `Z`, `+01:00`, `+0100`, `+01`, ` UTC`, ` GMT`: the offset and the end; nil offset when none.
    private static func zone(_ t: UnsafeRawBufferPointer, _ p: Int) -> (Int?, Int) {
        let n = t.count
        guard p < n else { return (nil, p) }
        let c = t[p]
        if c == UInt8(ascii: "Z") || c == UInt8(ascii: "z") {
            // Not the first letter of a word that follows without a space.
            if p + 1 < n, (t[p + 1] | 0x20) >= 0x61, (t[p + 1] | 0x20) <= 0x7A { return (nil, p) }
            return (0, p + 1)
        }
        if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            let sign = c == UInt8(ascii: "-") ? -1 : 1
            guard let hh = number(t, p + 1, 2), hh < 24 else { return (nil, p) }
            if p + 3 < n, t[p + 3] == UInt8(ascii: ":"), let mm = number(t, p + 4, 2), mm < 60 {
                return (sign * (hh * 3600 + mm * 60), p + 6)
            }
            if let mm = number(t, p + 3, 2), mm < 60 { return (sign * (hh * 3600 + mm * 60), p + 5) }
            return (sign * hh * 3600, p + 3)
        }
        if c == UInt8(ascii: " "), p + 6 <= n, t[p + 1] == UInt8(ascii: "+") || t[p + 1] == UInt8(ascii: "-"),
           let hh = number(t, p + 2, 2), let mm = number(t, p + 4, 2), hh < 24, mm < 60,
           p + 6 == n || t[p + 6] == UInt8(ascii: " ") {
            // ` +0100` after the seconds (Exim's log_timezone).
            return ((t[p + 1] == UInt8(ascii: "-") ? -1 : 1) * (hh * 3600 + mm * 60), p + 6)
        }
        if c == UInt8(ascii: " "), p + 4 <= n {
            let a = t[p + 1], b = t[p + 2], d = t[p + 3]
            let named = (a == UInt8(ascii: "U") && b == UInt8(ascii: "T") && d == UInt8(ascii: "C"))
                || (a == UInt8(ascii: "G") && b == UInt8(ascii: "M") && d == UInt8(ascii: "T"))
            let next = p + 4 < n ? t[p + 4] | 0x20 : 0
            let ends = !((next >= 0x61 && next <= 0x7A) || (next >= 0x30 && next <= 0x39))
            if named && ends { return (0, p + 4) }
        }
        return (nil, p)
    }

    private static func result(year: Int, month: Int, day: Int, seconds: Int, fraction: Double,
                               offset: Int?, end: Int, yearless: Bool = false) -> (ParsedTime, Int)? {
        guard (1...12).contains(month), day >= 1, day <= CivilTime.daysInMonth(year: year, month: month),
              (1...9999).contains(year) else { return nil }
        let civil = Double(CivilTime.days(year: year, month: month, day: day) * 86_400 + seconds) + fraction
        return (ParsedTime(seconds: civil - Double(offset ?? 0), local: offset == nil, yearless: yearless), end)
    }

    // MARK: - Forms

    /// `2024-01-02T03:04:05…`, `2024-01-02 03:04:05…`, `2024-01-02  3:04:05`, `2024/01/02 03:04:05…`.
    private static func yearFirst(_ t: UnsafeRawBufferPointer, _ p: Int) -> (ParsedTime, Int)? {
        let separator = t[p + 4]
        guard let year = number(t, p, 4), let month = number(t, p + 5, 2), p + 7 < t.count, t[p + 7] == separator,
              let day = number(t, p + 8, 2), p + 10 < t.count else { return nil }
        var i = p + 10
        var padded = false
        if t[i] == UInt8(ascii: "T") && separator == UInt8(ascii: "-") {
            i += 1
        } else if t[i] == UInt8(ascii: " ") {
            i += 1
            if i < t.count, t[i] == UInt8(ascii: " ") { i += 1; padded = true }
        } else {
            return nil
        }
        guard let (seconds, afterClock) = clock(t, i, oneDigitHour: padded) else { return nil }
        let (frac, afterFraction) = fraction(t, afterClock)
        let (offset, end) = zone(t, afterFraction)
        return result(year: year, month: month, day: day, seconds: seconds, fraction: frac, offset: offset, end: end)
    }

    /// `02/Jan/2024:03:04:05 +0000`.
    private static func clf(_ t: UnsafeRawBufferPointer, _ p: Int) -> (ParsedTime, Int)? {
        guard p + 20 <= t.count, let day = number(t, p, 2),
              let month = SyslogHeaderParser.monthNumber(t[p + 3], t[p + 4], t[p + 5]), t[p + 6] == UInt8(ascii: "/"),
              let year = number(t, p + 7, 4), t[p + 11] == UInt8(ascii: ":"),
              let (seconds, afterClock) = clock(t, p + 12) else { return nil }
        var offset: Int?
        var end = afterClock
        if afterClock + 6 <= t.count, t[afterClock] == UInt8(ascii: " "),
           t[afterClock + 1] == UInt8(ascii: "+") || t[afterClock + 1] == UInt8(ascii: "-"),
           let hh = number(t, afterClock + 2, 2), let mm = number(t, afterClock + 4, 2), hh < 24, mm < 60 {
            offset = (hh * 3600 + mm * 60) * (t[afterClock + 1] == UInt8(ascii: "-") ? -1 : 1)
            end = afterClock + 6
        }
        return result(year: year, month: month, day: day, seconds: seconds, fraction: 0, offset: offset, end: end)
    }

    /// `02-Jan-2024 03:04:05[.123]`.
    private static func dayMonthYear(_ t: UnsafeRawBufferPointer, _ p: Int) -> (ParsedTime, Int)? {
        guard p + 20 <= t.count, let day = number(t, p, 2),
              let month = SyslogHeaderParser.monthNumber(t[p + 3], t[p + 4], t[p + 5]), t[p + 6] == UInt8(ascii: "-"),
              let year = number(t, p + 7, 4), t[p + 11] == UInt8(ascii: " "),
              let (seconds, afterClock) = clock(t, p + 12) else { return nil }
        let (frac, afterFraction) = fraction(t, afterClock)
        let (offset, end) = zone(t, afterFraction)
        return result(year: year, month: month, day: day, seconds: seconds, fraction: frac, offset: offset, end: end)
    }

    /// `Mon DD` with a space-padded or two-digit day; returns the month, day and where the clock starts.
    private static func monthDay(_ t: UnsafeRawBufferPointer, _ p: Int) -> (Int, Int, Int)? {
        guard p + 7 <= t.count, let month = SyslogHeaderParser.monthNumber(t[p], t[p + 1], t[p + 2]),
              t[p + 3] == UInt8(ascii: " ") else { return nil }
        var i = p + 4
        let day: Int
        if t[i] == UInt8(ascii: " ") {
            guard let d = number(t, i + 1, 1) else { return nil }
            day = d
            i += 2
        } else if let d = number(t, i, 2) {
            day = d
            i += 2
        } else if let d = number(t, i, 1) {
            day = d
            i += 1
        } else {
            return nil
        }
        guard i < t.count, t[i] == UInt8(ascii: " ") else { return nil }
        return (month, day, i + 1)
    }

    /// `Mon` … `Sun`.
    private static func isWeekday(_ a: UInt8, _ b: UInt8, _ c: UInt8) -> Bool {
        switch (a | 0x20, b | 0x20, c | 0x20) {
        case (0x6D, 0x6F, 0x6E), (0x74, 0x75, 0x65), (0x77, 0x65, 0x64), (0x74, 0x68, 0x75),
             (0x66, 0x72, 0x69), (0x73, 0x61, 0x74), (0x73, 0x75, 0x6E): return true
        default: return false
        }
    }

    /// `Tue Jan  2 03:04:05[.123456] 2024`.
    private static func ctime(_ t: UnsafeRawBufferPointer, _ p: Int) -> (ParsedTime, Int)? {
        guard isWeekday(t[p], t[p + 1], t[p + 2]), let (month, day, clockStart) = monthDay(t, p + 4),
              let (seconds, afterClock) = clock(t, clockStart) else { return nil }
        let (frac, afterFraction) = fraction(t, afterClock)
        guard afterFraction + 5 <= t.count, t[afterFraction] == UInt8(ascii: " "),
              let year = number(t, afterFraction + 1, 4) else { return nil }
        return result(year: year, month: month, day: day, seconds: seconds, fraction: frac, offset: nil,
                      end: afterFraction + 5)
    }

    /// `Jan  2 03:04:05[.123]`: the year is placed later, when the event is made.
    private static func syslog(_ t: UnsafeRawBufferPointer, _ p: Int) -> (ParsedTime, Int)? {
        guard let (month, day, clockStart) = monthDay(t, p),
              let (seconds, afterClock) = clock(t, clockStart) else { return nil }
        let (frac, end) = fraction(t, afterClock)
        // 2000 is a leap year, so 29 February is kept until the real year is known.
        return result(year: 2000, month: month, day: day, seconds: seconds, fraction: frac, offset: nil,
                      end: end, yearless: true)
    }
}

/// What turning captured times into instants needs: the zone of times written
/// without one, and "now" for times written without a year.
struct EventContext: Sendable {
    var timeZone: SyslogTimeZone
    var reference: Double?

    /// Seconds since the epoch for a captured time.
    func seconds(_ time: ParsedTime, record: LogRecord) -> Double {
        var civil = time.seconds
        if time.yearless { civil = placeYear(civil, now: record.time ?? reference ?? Self.wallClock()) }
        guard time.local else { return civil }
        let whole = civil.rounded(.down)
        return civil - Double(timeZone.offset(localEpoch: Int(whole)))
    }

    /// The latest year that puts a year-2000 civil time at most a day after now.
    private func placeYear(_ civil: Double, now: Double) -> Double {
        let day = Int((civil / 86_400).rounded(.down))
        let secondOfDay = civil - Double(day) * 86_400
        let (_, month, dayOfMonth) = CivilTime.date(days: day)
        let limit = now + 86_400
        var year = CivilTime.date(days: Int((limit / 86_400).rounded(.down))).year
        for _ in 0..<8 {
            if dayOfMonth <= CivilTime.daysInMonth(year: year, month: month) {
                let t = Double(CivilTime.days(year: year, month: month, day: dayOfMonth)) * 86_400 + secondOfDay
                if t <= limit { return t }
            }
            year -= 1
        }
        return civil
    }

    static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec)
    }
}
