import IPSightCore
import Testing
@testable import LogSources

@Suite struct SyslogHeaderTests {
    func decode(_ line: String, reference: Double = 1_542_189_600, zone: SyslogTimeZone = .utc) -> LogRecord? {
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: zone, reference: reference))
        var text = line
        return text.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0)) }
    }

    func epoch(_ y: Int, _ m: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0) -> Double {
        Double(CivilTime.epoch(year: y, month: m, day: d, hour: h, minute: mi, second: s))
    }

    @Test func traditional() throws {
        let r = try #require(decode("Nov  4 10:00:00 login1 sshd[123]: Accepted password for a from 1.2.3.4 port 1 ssh2"))
        #expect(r.time == epoch(2018, 11, 4, 10))
        #expect(r.host == "login1")
        #expect(r.identifier == "sshd")
        #expect(r.pid == 123)
        #expect(r.message == "Accepted password for a from 1.2.3.4 port 1 ssh2")
        let padded = try #require(decode("Nov 04 10:00:00 h postfix/smtpd[9]: x"))
        #expect(padded.identifier == "postfix/smtpd")
        let noPid = try #require(decode("Nov 14 10:00:00 h dovecot: imap-login: Login"))
        #expect(noPid.identifier == "dovecot")
        #expect(noPid.pid == nil)
        #expect(noPid.message == "imap-login: Login")
    }

    @Test func highPrecisionAndZones() throws {
        let r = try #require(decode("2018-11-14T10:00:00.250000+01:00 h sshd[1]: m"))
        #expect(r.time == epoch(2018, 11, 14, 9) + 0.25)
        #expect(decode("2018-11-14T10:00:00Z h sshd[1]: m")?.time == epoch(2018, 11, 14, 10))
        #expect(decode("2018-11-14T10:00:00-05:30 h sshd[1]: m")?.time == epoch(2018, 11, 14, 15, 30))
        // journalctl -o short-iso
        #expect(decode("2018-11-14T10:00:00+0100 h sshd[1]: m")?.time == epoch(2018, 11, 14, 9))
    }

    @Test func rfc5424() throws {
        let r = try #require(decode("<38>1 2018-11-14T10:00:00.003Z login1 sshd 4242 - [meta x=\"a]b\\\"c\"] Accepted password for a from 1.2.3.4 port 1 ssh2"))
        #expect(r.time == epoch(2018, 11, 14, 10) + 0.003)
        #expect(r.identifier == "sshd")
        #expect(r.pid == 4242)
        #expect(r.host == "login1")
        #expect(r.message.hasPrefix("Accepted password"))
        let nil5424 = try #require(decode("<38>1 - - - - - -"))
        #expect(nil5424.time == nil)
        #expect(nil5424.identifier == nil)
        #expect(nil5424.message == "")
        let bom = try #require(decode("<38>1 2018-11-14T10:00:00Z h app - - - \u{FEFF}text"))
        #expect(bom.message == "text")
    }

    @Test func linesWithoutAHeaderAreWholeMessages() throws {
        let r = try #require(decode("192.0.2.1 - alice [14/Nov/2018:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1"))
        #expect(r.identifier == nil)
        #expect(r.time == nil)
        #expect(r.message.hasPrefix("192.0.2.1 - alice"))
        for bad in ["Nov 31 10:00:00 h x: y", "Foo  4 10:00:00 h x: y", "Nov  4 25:00:00 h x: y", "2018-02-30T10:00:00Z h x: y"] {
            #expect(decode(bad)?.identifier == nil, "\(bad)")
        }
    }

    @Test func newYearDecemberLinesReadInJanuaryBelongToTheYearBefore() throws {
        let january5 = epoch(2019, 1, 5)
        #expect(decode("Dec 31 23:59:59 h x: y", reference: january5)?.time == epoch(2018, 12, 31, 23, 59, 59))
        #expect(decode("Jan  1 00:00:01 h x: y", reference: january5)?.time == epoch(2019, 1, 1, 0, 0, 1))
    }

    @Test func aDateIsNeverPlacedMoreThanADayAhead() throws {
        let december6 = epoch(2026, 12, 6, 12, 0, 0)
        // Read on 6 December, February is this year's, not next year's.
        #expect(decode("Feb 25 08:00:00 h x: y", reference: december6)?.time == epoch(2026, 2, 25, 8, 0, 0))
        #expect(decode("Dec  7 11:59:59 h x: y", reference: december6)?.time == epoch(2026, 12, 7, 11, 59, 59))
        // Two days ahead is impossible this year: it is last year's.
        #expect(decode("Dec  8 12:00:01 h x: y", reference: december6)?.time == epoch(2025, 12, 8, 12, 0, 1))
    }

    @Test func newYearCrossedBothWays() throws {
        // A line stamped just after midnight by a clock a little ahead of ours: next year.
        let lateDecember31 = epoch(2026, 12, 31, 23, 59, 0)
        #expect(decode("Jan  1 00:00:30 h x: y", reference: lateDecember31)?.time == epoch(2027, 1, 1, 0, 0, 30))
        #expect(decode("Dec 31 23:58:00 h x: y", reference: lateDecember31)?.time == epoch(2026, 12, 31, 23, 58, 0))
        // After midnight, December's last lines are last year's.
        let january1 = epoch(2027, 1, 1, 0, 1, 0)
        #expect(decode("Dec 31 23:59:59 h x: y", reference: january1)?.time == epoch(2026, 12, 31, 23, 59, 59))
        #expect(decode("Jan  1 00:00:59 h x: y", reference: january1)?.time == epoch(2027, 1, 1, 0, 0, 59))
    }

    @Test func newYearAFileRunsIntoTheNextYear() throws {
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: epoch(2026, 6, 1)))
        decoder.header.firstYear = 2018
        var times: [Double?] = []
        for line in ["Dec 31 23:59:58 h x: a", "Dec 31 23:59:59 h x: b", "Jan  1 00:00:00 h x: c", "Feb 29 00:00:00 h x: d", "Mar  1 00:00:00 h x: e"] {
            var text = line
            times.append(text.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0))?.time })
        }
        #expect(times[0] == epoch(2018, 12, 31, 23, 59, 58))
        #expect(times[2] == epoch(2019, 1, 1))
        // 2019 has no 29 February: the first year after that has one, and the file follows it.
        #expect(times[3] == epoch(2020, 2, 29))
        #expect(times[4] == epoch(2020, 3, 1))
    }

    @Test func localTimeUsesTheZoneOffset() throws {
        let utc = try #require(decode("Nov  4 10:00:00 h x: y", zone: .utc)?.time)
        let east = try #require(decode("Nov  4 10:00:00 h x: y", zone: .offset(seconds: 3600))?.time)
        #expect(utc - east == 3600)
    }

    @Test func invalidUTF8IsRefused() {
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: 0))
        let bytes: [UInt8] = Array("Nov  4 10:00:00 h sshd[1]: ".utf8) + [0xFF, 0xFE, 0x41]
        #expect(bytes.withUnsafeBytes { decoder.decode($0) } == nil)
    }

    @Test func rfc3339Text() {
        #expect(CivilTime.rfc3339(1_542_189_600) == "2018-11-14T10:00:00Z")
        #expect(CivilTime.rfc3339(1_542_189_600.5) == "2018-11-14T10:00:00.500000Z")
        #expect(CivilTime.rfc3339(-1) == "1969-12-31T23:59:59Z")
    }
}
