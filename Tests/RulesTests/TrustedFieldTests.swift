import IPSightCore
import Testing
import LogSources
@testable import Rules

@Suite struct TrustedFieldTests {
    let line = "Accepted password for alice from 192.0.2.10 port 50022 ssh2"

    func journalRecord(_ trusted: TrustedFields, identifier: String = "sshd") -> LogRecord {
        LogRecord(time: 0, host: "h", identifier: identifier, pid: 1, message: line, trusted: trusted)
    }

    @Test func theDaemonItselfIsTrusted() throws {
        let rules = try loadRules()
        #expect(event(rules.match(journalRecord(TrustedFields(comm: "sshd", uid: "0"))))?.ip == "192.0.2.10")
        #expect(event(rules.match(journalRecord(TrustedFields(comm: "sshd-session", uid: "0")))) != nil)
        #expect(event(rules.match(journalRecord(TrustedFields(systemdUnit: "ssh.service", comm: nil, uid: "0")))) != nil)
    }

    @Test func aForgedEntryIsRejected() throws {
        let rules = try loadRules()
        // `logger -t sshd` by an ordinary user, or a process renamed sshd by one.
        #expect(rules.match(journalRecord(TrustedFields(comm: "logger", uid: "1000"))) == .untrusted(service: "sshd"))
        #expect(rules.match(journalRecord(TrustedFields(comm: "sshd", uid: "65534"))) == .untrusted(service: "sshd"))
        // A short-lived sender that lost _COMM is not trusted on _UID alone.
        #expect(rules.match(journalRecord(TrustedFields(comm: nil, uid: "0"))) == .untrusted(service: "sshd"))
    }

    @Test func syslogFileRecordsHaveNoTrustedFieldsToCheck() throws {
        let rules = try loadRules()
        #expect(event(rules.match(LogRecord(identifier: "sshd", message: line))) != nil)
    }

    @Test func conditionsAreAlternativesOfConjunctions() throws {
        let file = try RuleFileParser.parse("""
        service = demo
        identifiers = demo
        journal = _COMM=demo
        trusted = _UID=0 _COMM=demo|demo2
        trusted = _SYSTEMD_UNIT=demo.service
        [a]
        outcome = success
        match = ok <user> <ip>
        """, path: "demo.rules")
        #expect(file.trusts(TrustedFields(comm: "demo2", uid: "0")))
        #expect(!file.trusts(TrustedFields(comm: "demo2", uid: "1")))
        #expect(file.trusts(TrustedFields(systemdUnit: "demo.service")))
        #expect(!file.trusts(TrustedFields()))
    }
}
