import Foundation
import Glibc
import Logging
import Testing
import TestSupport
@testable import Observability

/// Which form the agent's log takes, from what standard error is, and the lines
/// each form writes.
@Suite struct LogOutputTests {
    /// `DEVICE:INODE` of an open descriptor, as systemd writes JOURNAL_STREAM.
    static func stream(_ fd: Int32) -> String {
        var info = stat()
        fstat(fd, &info)
        return "\(info.st_dev):\(info.st_ino)"
    }

    @Test func theJournalOnlyWhenJournalStreamNamesThisDescriptor() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.write("a", "")
        dir.write("b", "")
        let a = open(dir.file("a"), O_WRONLY), b = open(dir.file("b"), O_WRONLY)
        defer { close(a); close(b) }
        #expect(LogOutput.detect(environment: ["JOURNAL_STREAM": Self.stream(a)], fd: a) == .journal)
        // Inherited by a child whose standard error went elsewhere: not the journal.
        #expect(LogOutput.detect(environment: ["JOURNAL_STREAM": Self.stream(b)], fd: a) == .priorityPrefixed)
        #expect(LogOutput.detect(environment: ["JOURNAL_STREAM": "garbage"], fd: a) == .priorityPrefixed)
        #expect(LogOutput.detect(environment: [:], fd: a) == .priorityPrefixed)
    }

    @Test func aPipeGetsPrefixesAndATerminalGetsWords() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]); close(ends[1]) }
        #expect(LogOutput.detect(environment: [:], fd: ends[1]) == .priorityPrefixed)
        // A pseudo-terminal's master side is a terminal too.
        let terminal = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        try #require(terminal >= 0, "no /dev/ptmx")
        defer { close(terminal) }
        #expect(LogOutput.detect(environment: [:], fd: terminal) == .terminal)
    }

    @Test func linesKeepTheAgentsTextAndPriority() {
        let agent = StandardErrorLogHandler(label: "ipsight", style: .priorityPrefixed)
        let alerts = StandardErrorLogHandler(label: "ipsight.alerts", style: .priorityPrefixed)
        func text(_ label: String, _ message: Logger.Message, _ metadata: Logger.Metadata = [:]) -> String {
            LogLine.text(label: label, message: message, metadata: metadata)
        }
        #expect(agent.line(text("ipsight", "lines lost: /var/log/auth.log: gone"), level: .warning) == "<4>lines lost: /var/log/auth.log: gone\n")
        #expect(agent.line(text("ipsight", "stopped after 3 login events, 0 alerts"), level: .notice)
                == "<5>stopped after 3 login events, 0 alerts\n")
        #expect(alerts.line(text("ipsight.alerts", "alert a1 dropped: HTTP 400"), level: .error)
                == "<3>ipsight.alerts: alert a1 dropped: HTTP 400\n")
        let levels: [(Logger.Level, Int)] = [(.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2)]
        for (level, priority) in levels { #expect(LogLine.priority(level) == priority) }
        #expect(text("ipsight.api", "slow", ["b": "2", "a": "1"]) == "ipsight.api: slow a=1 b=2")

        let terminal = StandardErrorLogHandler(label: "ipsight", style: .terminal)
        let line = terminal.line("reloaded /etc/ipsight/ipsight.conf", level: .notice, now: 0)
        #expect(line.hasSuffix(" notice: reloaded /etc/ipsight/ipsight.conf\n"), "\(line)")
        #expect(line.count == "1970-01-01 00:00:00 notice: reloaded /etc/ipsight/ipsight.conf\n".count, "\(line)")
    }

    @Test func aLevelBelowTheHandlersIsNotWritten() {
        let log = LogCapture()
        var logger = log.logger()
        logger.logLevel = .info
        logger.debug("not this")
        logger.info("this")
        #expect(log.entries.map(\.message.description) == ["this"])
    }
}
