import IPSightCore
import Testing
@testable import LogSources

/// The journal reader's filter decides as sd-journal's matches would: terms of
/// one alternative all hold, values of one field are alternatives.
@Suite struct JournalFilterTests {
    /// Whether an entry with these fields passes.
    static func passes(_ filter: JournalFilter, _ fields: [String: String]) -> Bool {
        let values = filter.names.map { name in fields[String(decoding: name.dropLast(), as: UTF8.self)].map { Array($0.utf8) } }
        return filter.passes { index in
            guard let value = values[index] else { return nil }
            return value.withUnsafeBytes { UnsafeRawBufferPointer(start: $0.baseAddress, count: $0.count) }
        }
    }

    @Test func anyAlternativeOfOneTermLetsAnEntryThrough() throws {
        let filter = try JournalFilter([["_SYSTEMD_UNIT=ssh.service"], ["_COMM=sshd"], ["SYSLOG_IDENTIFIER=sshd"], ["_COMM=dovecot"]])
        #expect(Self.passes(filter, ["_SYSTEMD_UNIT": "ssh.service"]))
        #expect(Self.passes(filter, ["_COMM": "dovecot", "_SYSTEMD_UNIT": "cron.service"]))
        #expect(Self.passes(filter, ["SYSLOG_IDENTIFIER": "sshd"]))
        #expect(!Self.passes(filter, ["SYSLOG_IDENTIFIER": "sshd-x", "_COMM": "sshd2", "_SYSTEMD_UNIT": "ssh"]))
        // A value of one field is not a value of another.
        #expect(!Self.passes(filter, ["SYSLOG_IDENTIFIER": "ssh.service"]))
        #expect(!Self.passes(filter, [:]))
    }

    @Test func termsOfOneAlternativeAllHoldAndValuesOfOneFieldAreAlternatives() throws {
        let filter = try JournalFilter([["_UID=0", "_COMM=sshd", "_COMM=sshd-session"], ["SYSLOG_FACILITY=10"]])
        #expect(Self.passes(filter, ["_UID": "0", "_COMM": "sshd-session"]))
        #expect(Self.passes(filter, ["_UID": "0", "_COMM": "sshd"]))
        #expect(!Self.passes(filter, ["_UID": "1000", "_COMM": "sshd"]))
        #expect(!Self.passes(filter, ["_COMM": "sshd"]))
        #expect(Self.passes(filter, ["SYSLOG_FACILITY": "10"]))
    }

    @Test func noAlternativesPassEverythingAndEmptyValuesAreValues() throws {
        #expect(Self.passes(try JournalFilter([]), [:]))
        let filter = try JournalFilter([["SYSLOG_IDENTIFIER="]])
        #expect(Self.passes(filter, ["SYSLOG_IDENTIFIER": ""]))
        #expect(!Self.passes(filter, ["SYSLOG_IDENTIFIER": "x"]))
    }

    @Test func aTermWithoutAFieldIsRefused() {
        #expect(throws: SourceError.self) { try JournalFilter([["sshd"]]) }
        #expect(throws: SourceError.self) { try JournalFilter([["=sshd"]]) }
    }
}
