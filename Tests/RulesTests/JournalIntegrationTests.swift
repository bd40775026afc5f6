import IPSightCore
import Foundation
import Testing
import TestSupport
import LogSources
@testable import Rules

/// A real journald: entries written by logger, systemd-cat and journal_send.py
/// are read back live through `JournalReader`.
extension Journald {
    /// Reads records (following) until `done` says so; a deadline stops a test
    /// that would otherwise wait forever for an entry that never comes.
    static func collect(_ configuration: JournalReader.Configuration, deadline seconds: Double = 30,
                        until done: ([LogRecord]) -> Bool) throws -> [LogRecord] {
        let reader = JournalReader(configuration: configuration)
        let guardTimer = DispatchWorkItem { reader.stop() }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds, execute: guardTimer)
        var records: [LogRecord] = []
        while let batch = try reader.nextBatch() {
            records += batch
            if done(records) { break }
        }
        guardTimer.cancel()
        reader.stop()
        return records
    }
}

@Suite(.serialized) struct JournalIntegrationTests {
    @Test func entriesFromLoggerAndSystemdCatAreReadLive() throws {
        try Journald.require()
        let token = Journald.token()
        let config = JournalReader.Configuration(
            matches: [["IPSIGHT_TEST=\(token)"], ["SYSLOG_IDENTIFIER=ipsight-\(token)"]], follow: true)
        // Read as the agent and `parse` read it: on a source thread of a group.
        let group = SourceGroup()
        group.add(SourceKey.journal, JournalReader(configuration: config))
        // Written while the source is waiting: it must see them as they arrive.
        try Journald.run(["logger", "--journald"], input: "MESSAGE=first \(token)\nSYSLOG_IDENTIFIER=ipsight-test\nIPSIGHT_TEST=\(token)\n")
        try Journald.run(["logger", "--journald"], input: "MESSAGE=second \(token)\nSYSLOG_IDENTIFIER=ipsight-test\nIPSIGHT_TEST=\(token)\n")
        try Journald.run(["systemd-cat", "-t", "ipsight-\(token)", "echo", "third \(token)"])
        var records: [LogRecord] = []
        let deadline = Date(timeIntervalSinceNow: 30)
        while records.count < 3 && Date() < deadline {
            if case .records(_, let batch)? = group.next(timeout: 1) { records += batch }
        }
        group.stop()
        #expect(group.join(timeout: 5))
        // journald serves its datagram and stream sockets separately: compare as a set.
        #expect(records.count == 3)
        #expect(Set(records.map(\.message)) == ["first \(token)", "second \(token)", "third \(token)"])
        #expect(records.first { $0.message.hasPrefix("first") }?.identifier == "ipsight-test")
        #expect(records.first { $0.message.hasPrefix("third") }?.identifier == "ipsight-\(token)")
        for record in records {
            #expect(record.trusted?.uid == "0")
            #expect(record.time != nil)
            guard case .journal(let cursor) = record.position else {
                Issue.record("no cursor")
                continue
            }
            #expect(!cursor.isEmpty)
        }
    }

    /// journald compresses a long field (or not); either way one over the limit is
    /// refused and counted, never cut short and passed on as a shorter line.
    @Test func aMessageOverTheLimitIsRefusedAndCountedCompressedOrNot() throws {
        try Journald.require()
        let token = Journald.token()
        let limit = 64 * 1024
        var random = SeededRandom(seed: 3)
        let noise = String((0..<(2 * limit)).map { _ in Character(UnicodeScalar(UInt8(97 + random.next() % 26))) })
        let messages = ["\(token) short",
                        token + " " + String(repeating: "A", count: limit - token.count - 1),   // exactly the limit
                        token + " " + String(repeating: "A", count: 1 << 20),                   // compresses well
                        token + " " + noise,                                                    // barely compresses
                        "\(token) after"]
        for message in messages {
            try Journald.run(["logger", "--journald"], input: "MESSAGE=\(message)\nIPSIGHT_TEST=\(token)\n")
        }
        let reader = JournalReader(configuration: .init(matches: [["IPSIGHT_TEST=\(token)"]], follow: true,
                                                         maxMessageLength: limit))
        let guardTimer = DispatchWorkItem { reader.stop() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: guardTimer)
        var records: [LogRecord] = []
        while let batch = try reader.nextBatch() {
            records += batch
            if records.last?.message == "\(token) after" { break }
        }
        guardTimer.cancel()
        reader.stop()
        #expect(records.map(\.message.count) == [messages[0].count, limit, messages[4].count])
        #expect(reader.skips.longLines == 2)
    }

    /// A refused entry counts while the reader waits for more, not only once a
    /// later entry passes (a status read in between would show nothing refused).
    @Test func aRefusedEntryCountsWhileTheReaderWaits() throws {
        try Journald.require()
        let token = Journald.token()
        try Journald.run(["logger", "--journald"],
                         input: "MESSAGE=\(token) " + String(repeating: "A", count: 80 * 1024) + "\nIPSIGHT_TEST=\(token)\n")
        let reader = JournalReader(configuration: .init(matches: [["IPSIGHT_TEST=\(token)"]], follow: true))
        let reading = DispatchGroup()
        reading.enter()
        DispatchQueue.global().async {
            while (try? reader.nextBatch()) != nil {}
            reading.leave()
        }
        #expect(waitUntil(seconds: 30) { reader.skips.longLines == 1 }, "counted while nothing else arrives")
        reader.stop()
        reading.wait()
    }

    @Test func stoppingAndResumingFromTheCursorLosesAndRepeatsNothing() throws {
        try Journald.require()
        let token = Journald.token()
        func write(_ range: ClosedRange<Int>) throws {
            for i in range {
                try Journald.run(["logger", "--journald"], input: "MESSAGE=\(token) \(i)\nIPSIGHT_TEST=\(token)\n")
            }
        }
        try write(1...6)
        let match = [["IPSIGHT_TEST=\(token)"]]
        // A first run processes three entries and stops.
        let first = try Journald.collect(.init(matches: match, follow: true)) { $0.count >= 3 }
        #expect(first.count >= 3)
        let processed = Array(first.prefix(3))
        guard case .journal(let cursor) = processed.last?.position else {
            Issue.record("no cursor")
            return
        }
        // More entries arrive while it is stopped.
        try write(7...8)
        let second = try Journald.collect(.init(matches: match, follow: true, cursor: cursor)) { $0.count >= 5 }
        let messages = (processed + second).map(\.message)
        #expect(messages == (1...8).map { "\(token) \($0)" })
        // Without following, a resume at the end yields nothing more.
        guard case .journal(let last) = second.last?.position else { return }
        let rest = try Journald.collect(.init(matches: match, follow: false, cursor: last)) { _ in false }
        #expect(rest.isEmpty)
    }

    @Test func theDaemonIsTrustedAndForgeriesAreRejected() throws {
        try Journald.require()
        let rules = try loadRules()
        let token = Journald.token()
        let script = Paths.shared + "/bench/journal_send.py"
        guard FileManager.default.fileExists(atPath: script) else {
            throw SupportError("\(script) is missing: clone the shared/ directory beside the repository")
        }
        // sshd's own entry: a process named sshd, as root.
        try Journald.run(Journald.sender(comm: "sshd"),
                         input: "Accepted password for real\(token) from 192.0.2.7 port 2201 ssh2\n")
        // The same from an ordinary user renaming its process sshd.
        try Journald.run(Journald.sender(comm: "sshd") + ["--user", "nobody"],
                         input: "Accepted password for renamed\(token) from 192.0.2.8 port 2202 ssh2\n")
        // `logger -t sshd` by an ordinary user, through the syslog socket.
        try Journald.run(["runuser", "-u", "nobody", "--", "logger", "-u", "/run/systemd/journal/dev-log", "-t", "sshd",
                          "Accepted password for logger\(token) from 192.0.2.9 port 2203 ssh2"])
        let config = JournalReader.Configuration(matches: rules.journalMatches.map { $0.map(\.text) }, follow: true)
        let records = try Journald.collect(config) { records in
            records.filter { $0.message.contains(token) }.count >= 3
        }.filter { $0.message.contains(token) }
        #expect(records.count == 3)
        var results: [String: MatchResult] = [:]
        for record in records {
            let user = record.message.split(separator: " ")[3]
            results[String(user)] = rules.match(record)
        }
        let real = results["real\(token)"].flatMap(event)
        #expect(real?.outcome == .success)
        #expect(real?.ip == "192.0.2.7")
        #expect(real?.port == 2201)
        #expect(real?.service == "sshd")
        #expect(results["renamed\(token)"] == .untrusted(service: "sshd"))
        #expect(results["logger\(token)"] == .untrusted(service: "sshd"))
    }

    @Test func aFollowingReaderSurvivesRotationAndVacuum() throws {
        try Journald.require()
        let token = Journald.token()
        func write(_ i: Int) throws {
            try Journald.run(["logger", "--journald"], input: "MESSAGE=\(token) \(i)\nIPSIGHT_TEST=\(token)\n")
        }
        let reader = JournalReader(configuration: .init(matches: [["IPSIGHT_TEST=\(token)"]], follow: true))
        let stopper = DispatchWorkItem { reader.stop() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 30, execute: stopper)
        var records: [LogRecord] = []
        try write(1)
        try write(2)
        while records.count < 2, let batch = try reader.nextBatch() { records += batch }
        // The file the reader stands in is archived, then deleted.
        try Journald.exclusively {
            try Journald.run(["journalctl", "--rotate"])
            try Journald.run(["journalctl", "--vacuum-files=1"])
        }
        try write(3)
        try write(4)
        while records.count < 4, let batch = try reader.nextBatch() { records += batch }
        stopper.cancel()
        reader.stop()
        #expect(records.map(\.message) == (1...4).map { "\(token) \($0)" })
    }

    @Test func journalFilesAreReadForReplay() throws {
        try Journald.require()
        let token = Journald.token()
        try Journald.run(["logger", "--journald"], input: "MESSAGE=replay \(token)\nIPSIGHT_TEST=\(token)\n")
        // The runtime journal lives under /run/log/journal/<machine id>.
        let base = "/run/log/journal"
        let machine = try #require(try FileManager.default.contentsOfDirectory(atPath: base).first)
        let directory = base + "/" + machine
        let records = try Journald.collect(.init(source: .directory(directory), matches: [["IPSIGHT_TEST=\(token)"]], follow: true)) {
            !$0.isEmpty
        }
        #expect(records.first?.message == "replay \(token)")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".journal") }.map { directory + "/" + $0 }
        let fromFiles = try Journald.collect(.init(source: .files(files), matches: [["IPSIGHT_TEST=\(token)"]], follow: false)) { _ in false }
        #expect(fromFiles.map(\.message) == ["replay \(token)"])
    }
}
