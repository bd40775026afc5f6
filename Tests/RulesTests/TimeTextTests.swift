import IPSightCore
import Testing
import LogSources
@testable import Rules

/// `<time>` reads the timestamp forms services write in their own files.
@Suite struct TimeTextTests {
    func read(_ text: String) -> (ParsedTime, Int)? {
        var copy = text
        return copy.withUTF8 { TimeText.parse(UnsafeRawBufferPointer($0), at: 0) }
    }

    func utc(_ y: Int, _ m: Int, _ d: Int, _ h: Int, _ mi: Int, _ s: Int) -> Double {
        Double(CivilTime.epoch(year: y, month: m, day: d, hour: h, minute: mi, second: s))
    }

    @Test(arguments: [
        ("2024-01-02T03:04:05Z", 0.0, false),
        ("2024-01-02T03:04:05.250+01:00", -3600 + 0.25, false),
        ("2024-01-02 03:04:05,250 ", 0.25, true),
        ("2024-01-02 03:04:05.123 UTC [77]", 0.123, false),
        ("2024-01-02  3:04:05 8 [Warning]", 0.0, true),
        ("2024/01/02 03:04:05 [error]", 0.0, true),
        ("Tue Jan  2 03:04:05 2024 [pid 1]", 0.0, true),
        ("Tue Jan 02 03:04:05.500000 2024]", 0.5, true),
        ("02/Jan/2024:03:04:05 -0200]", 7200.0, false),
        ("02-Jan-2024 03:04:05.5 ", 0.5, true),
        ("2024-01-02T03:04:05+0100", -3600.0, false),
    ])
    func forms(text: String, shift: Double, local: Bool) throws {
        let (time, _) = try #require(read(text), "\(text)")
        #expect(abs(time.seconds - (utc(2024, 1, 2, 3, 4, 5) + shift)) < 1e-6, "\(text)")
        #expect(time.local == local, "\(text)")
    }

    @Test func theTimeEndsWhereItsFormEnds() throws {
        #expect(read("2024-01-02 03:04:05.123 UTC [77]")?.1 == 27)
        #expect(read("2024-01-02 03:04:05 UTCX")?.1 == 19)
        #expect(read("Tue Jan  2 03:04:05 2024 [pid 1]")?.1 == 24)
    }

    @Test func invalidDatesAreRefused() {
        for bad in ["2023-02-29T00:00:00Z", "2024-13-01 00:00:00", "2024-01-02 24:00:00", "Xyz Jan  2 03:04:05 2024",
                    "2024-01-02", "99/Jan/2024:03:04:05 +0000", "Jan 32 00:00:00", ""] {
            #expect(read(bad) == nil, "\(bad)")
        }
    }

    @Test func aTimeWithoutAYearIsPlacedAtMostADayAhead() throws {
        let (time, _) = try #require(read("Dec 31 23:59:59"))
        #expect(time.yearless)
        let context = EventContext(timeZone: .utc, reference: utc(2027, 1, 1, 0, 0, 30))
        #expect(context.seconds(time, record: LogRecord(message: "")) == utc(2026, 12, 31, 23, 59, 59))
        let (january, _) = try #require(read("Jan  1 00:00:59"))
        #expect(EventContext(timeZone: .utc, reference: utc(2026, 12, 31, 23, 59, 0))
            .seconds(january, record: LogRecord(message: "")) == utc(2027, 1, 1, 0, 0, 59))
    }

    @Test func localTimesUseTheChosenZone() throws {
        let (time, _) = try #require(read("2024-01-02 03:04:05"))
        let east = EventContext(timeZone: .offset(seconds: 3600), reference: nil)
        #expect(east.seconds(time, record: LogRecord(message: "")) == utc(2024, 1, 2, 2, 4, 5))
    }
}
