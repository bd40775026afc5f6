import IPSightCore
import Testing
import LogSources
@testable import Rules

/// Client text (user names, certificate key IDs, structured values) can never
/// move an event's address, user or outcome.
@Suite struct ClientTextTests {
    static let certRules = """
    service = demo
    identifiers = demo
    [accepted]
    outcome = success
    match = Accepted <method> for <user:100> from <ip> port <port> ssh2: <word> <word> ID <text> (serial <num>) CA <word> <word>
    match = Accepted <method> for <user:100> from <ip> port <port> ssh2: <word> <word>
    """

    func rules(_ text: String) throws -> RuleSet {
        ExampleCheck.prepared(RuleSet(files: [try RuleFileParser.parse(text, path: "demo.rules")]))
    }

    func match(_ rules: RuleSet, _ message: String) -> MatchResult {
        rules.match(LogRecord(identifier: "demo", message: message))
    }

    @Test func aCertificateKeyIDCannotSupplyTheAddress() throws {
        let rules = try rules(Self.certRules)
        let line = "Accepted publickey for alice from 192.0.2.11 port 1022 ssh2: ED25519-CERT SHA256:abc ID x from 6.6.6.6 port 22 ssh2: y (serial 7) CA ED25519 SHA256:def"
        let e = try #require(event(match(rules, line)))
        #expect(e.ip == "192.0.2.11")
        #expect(e.user == "alice")
        #expect(e.port == 1022)
    }

    @Test func aUserNameCannotSupplyTheAddressBeforeACertificate() throws {
        let rules = try rules(Self.certRules)
        let line = "Accepted publickey for x from 6.6.6.6 port 22 ssh2 from 192.0.2.11 port 1022 ssh2: ED25519-CERT SHA256:abc ID k (serial 7) CA ED25519 SHA256:def"
        let e = try #require(event(match(rules, line)))
        #expect(e.ip == "192.0.2.11")
        #expect(e.user == "x from 6.6.6.6 port 22 ssh2")
    }

    @Test func clientTextOnBothSidesThatReadsTwoWaysIsRefused() throws {
        let rules = try rules(Self.certRules)
        // Either the user or the key ID carries the imitation: no reading is trusted.
        let line = "Accepted publickey for a from 6.6.6.6 port 1 ssh2: ED25519-CERT SHA256:x ID b from 1.1.1.1 port 5 ssh2: ED25519-CERT SHA256:y ID c (serial 1) CA ED25519 SHA256:z"
        #expect(match(rules, line) == .ambiguous(service: "demo"))
    }

    @Test func aReadingThatPutsMoreThanTheDaemonsMaximumInAUserIsImpossible() throws {
        let rules = try rules(Self.certRules)
        // The only other reading would need a 120-byte user name; sshd writes at most 100.
        let padding = String(repeating: "p", count: 80)
        let line = "Accepted publickey for \(padding) from 6.6.6.6 port 1 ssh2: ED25519-CERT SHA256:x ID b from 192.0.2.1 port 5 ssh2: ED25519-CERT SHA256:y ID c (serial 1) CA ED25519 SHA256:z"
        let e = try #require(event(match(rules, line)))
        #expect(e.ip == "6.6.6.6")
        #expect(e.user == padding)
        // A line the daemon cannot write (its only reading breaks the bound) is refused, not bent.
        let tooLong = String(repeating: "p", count: 101)
        #expect(match(rules, "Accepted publickey for \(tooLong) from 192.0.2.1 port 5 ssh2: ED25519 SHA256:y") == .ambiguous(service: "demo"))
    }

    @Test func aHugeLineOfImitationsIsMatchedQuickly() throws {
        let rules = try rules("""
        service = demo
        identifiers = demo
        [failed]
        outcome = failure
        match = Failed password for <user> from <ip> port <port> agent <text>
        """)
        let imitation = String(repeating: "from 1.1.1.1 port 1 agent ", count: 40_000)
        let clock = ContinuousClock()
        var result: MatchResult = .unmatched
        let elapsed = clock.measure {
            result = match(rules, "Failed password for \(imitation)x from 192.0.2.1 port 2 agent \(imitation)")
        }
        // Both sides imitate each other: refused, and in linear time.
        #expect(result == .ambiguous(service: "demo"))
        #expect(elapsed < .seconds(5))
    }

    @Test func twoFreeSlotsNeedABoundedTail() {
        #expect(throws: RuleFileError.self) {
            try RuleFileParser.parse("""
            service = demo
            identifiers = demo
            [a]
            outcome = failure
            match = for <user> from <ip> id <text> end <any>
            """, path: "demo.rules")
        }
        #expect(throws: RuleFileError.self) {
            try RuleFileParser.parse("""
            service = demo
            identifiers = demo
            [a]
            outcome = failure
            match = for <user> from <ip> id <text> x <text> y <num>
            """, path: "demo.rules")
        }
    }

    @Test func keyValueTextWithARepeatedKeyIsRefused() throws {
        let rules = try rules("""
        service = demo
        identifiers = demo
        [error]
        outcome = failure
        match = event <kv>
        when = type=LOGIN_ERROR
        user-field = username
        ip-field = ipAddress
        """)
        let quoted = #"event type="LOGIN_ERROR", ipAddress="192.0.2.5", username="bob\", ipAddress=\"6.6.6.6""#
        let e = try #require(event(match(rules, quoted)))
        #expect(e.ip == "192.0.2.5")
        #expect(e.user == #"bob", ipAddress="6.6.6.6"#)
        // An unquoting writer and a crafted name: the key appears twice, so neither is believed.
        #expect(match(rules, "event type=LOGIN_ERROR, ipAddress=192.0.2.5, username=bob, ipAddress=6.6.6.6") == .unmatched)
        #expect(match(rules, "event type=LOGIN, ipAddress=192.0.2.5, username=bob") == .unmatched)
    }

    @Test func aJSONFieldPatternGivesTheUserAndTheNamedFieldTheAddress() throws {
        let rules = try rules("""
        service = demo
        identifiers = demo
        [failed]
        outcome = failure
        type = json
        user-field = -
        ip-field = remoteAddr
        field-match = message Login failed: <user> (Remote IP: <ip>)
        """)
        let line = #"{"remoteAddr":"192.0.2.9","time":"2024-01-02T03:04:05+01:00","message":"Login failed: x (Remote IP: 6.6.6.6) (Remote IP: 192.0.2.9)"}"#
        let e = try #require(event(match(rules, line)))
        #expect(e.ip == "192.0.2.9")
        #expect(e.user == "x (Remote IP: 6.6.6.6)")
        #expect(e.time == Double(CivilTime.epoch(year: 2024, month: 1, day: 2, hour: 2, minute: 4, second: 5)))
        #expect(match(rules, #"{"remoteAddr":"192.0.2.9","message":"Logged in: x"}"#) == .unmatched)
    }

    @Test func addressFieldsTakePortsAndSambaPrefixes() {
        #expect(StructuredRule.endpoint("192.0.2.1:5678")?.ip == "192.0.2.1")
        #expect(StructuredRule.endpoint("192.0.2.1:5678")?.port == 5678)
        #expect(StructuredRule.endpoint("[2001:db8::1]:443")?.ip == "2001:db8::1")
        #expect(StructuredRule.endpoint("2001:db8::1")?.port == nil)
        #expect(StructuredRule.endpoint("ipv4:192.0.2.7:445")?.ip == "192.0.2.7")
        #expect(StructuredRule.endpoint("client.example.org")?.name == "client.example.org")
        #expect(StructuredRule.endpoint("not an address") == nil)
        #expect(StructuredRule.endpoint("192.0.2.1:99999") == nil)
    }

    @Test func theShippedRulesSurviveEveryWordingInEveryClientSlot() throws {
        let report = InjectionCheck.run(try loadRules())
        #expect(report.injections > 5_000)
        for failure in report.failures { Issue.record("\(failure)") }
    }

    @Test func theGeneratorCatchesARuleThatTrustsTextAfterAUser() throws {
        // `<text>` after the address, but matched at the rightmost fit: a wording in it
        // moves the address, and the generator must say so.
        let unsafe = try RuleFileParser.parse("""
        service = demo
        identifiers = demo
        [accepted]
        outcome = success
        match = Accepted <method> for <user:word> from <ip> port <port> ssh2: <text>
        example = Nov  4 10:00:00 h demo[1]: Accepted publickey for alice from 192.0.2.11 port 1022 ssh2: RSA SHA256:abc
        expect = outcome=success user=alice ip=192.0.2.11
        """, path: "demo.rules")
        let report = InjectionCheck.run(RuleSet(files: [unsafe]))
        #expect(report.injections > 0)
        #expect(report.failures.isEmpty, "a lone final <text> after bounded text is safe")
        let rightmost = try RuleFileParser.parse("""
        service = demo
        identifiers = demo
        [accepted]
        outcome = success
        match = Accepted <method> for <user> from <ip> port <port> ssh2: <text>
        example = Nov  4 10:00:00 h demo[1]: Accepted publickey for alice from 192.0.2.11 port 1022 ssh2: RSA SHA256:abc
        expect = outcome=success user=alice ip=192.0.2.11
        """, path: "demo.rules")
        let second = InjectionCheck.run(RuleSet(files: [rightmost]))
        // A user and a final <text>: the imitations are refused as ambiguous, never read.
        #expect(second.failures.isEmpty)
        #expect(second.refused > 0)
    }
}

/// A service's own log file, read with its identifier: not syslog, and its rules read the line's time.
@Suite struct OwnFileTests {
    @Test func aLineOfAServicesOwnFileIsReadWholeWithItsIdentifierAndTime() throws {
        let rules = ExampleCheck.prepared(try loadRules())
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: ExampleCheck.reference), identifier: "vsftpd")
        var line = #"Sun Nov  4 10:00:00 2018 [pid 1234] [alice] OK LOGIN: Client "192.0.2.1""#
        let record = try #require(line.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0)) })
        #expect(record.identifier == "vsftpd" && record.message == line && record.time == nil)
        let e = try #require(event(rules.match(record)))
        #expect(e.user == "alice" && e.ip == "192.0.2.1" && e.outcome == .success)
        #expect(e.time == Double(CivilTime.epoch(year: 2018, month: 11, day: 4, hour: 10, minute: 0, second: 0)))
    }
}

@Suite struct DaemonPunctuationTests {
    @Test func anAddressFollowedByAFullStopIsTheAddress() throws {
        let rules = ExampleCheck.prepared(RuleSet(files: [try RuleFileParser.parse("""
            service = demo
            identifiers = demo
            [failed]
            outcome = failure
            match = Wrong password. IP: <ip>. Username: <user>.
            """, path: "demo.rules")]))
        let e = try #require(event(rules.match(LogRecord(identifier: "demo", message: "Wrong password. IP: 192.0.2.5. Username: a. IP: 6.6.6.6. b."))))
        #expect(e.ip == "192.0.2.5" && e.user == "a. IP: 6.6.6.6. b")
        #expect(rules.match(LogRecord(identifier: "demo", message: "Wrong password. IP: 192.0.2.5.. Username: a.")) == .unmatched)
    }
}
