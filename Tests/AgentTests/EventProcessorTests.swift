import TestSupport
import Detection
import IPSightCore
import LogSources
import Rules
import Testing
@testable import Agent

@Suite struct EventProcessorTests {
    func records(_ lines: [String]) -> [LogRecord] {
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc))
        return lines.enumerated().map { i, line in
            var text = line
            var record = text.withUTF8 { decoder.decode(UnsafeRawBufferPointer($0))! }
            record.position = .file(FilePosition(path: "/log", device: 1, inode: 2, offset: UInt64(100 * (i + 1)), headHash: 0))
            return record
        }
    }

    @Test func coldStartAlertsAreLearntSoTheEntityLeavesColdStart() throws {
        var c = AgentConfig()
        c.coldStartPolicy = .alert
        c.coldStartMinLogins = 3
        let processor = EventProcessor(rules: try RuleSet.load(directory: Paths.rules), detector: Detector(policy: c.policy, model: nil), config: c)
        let lines = (0..<4).map { Synthetic.sshdLine(minute: $0, user: "alice", ip: "10.1.0.\($0 + 1)").dropLast() }.map(String.init)
        let outcome = processor.process(records(lines), source: "file:/log", now: 0)
        #expect(outcome.verdicts.map(\.1.reason) == ["new-entity", "new-entity", "new-entity", "no-model"])
        #expect(outcome.alerts.count == 3 && outcome.alerts.allSatisfy { $0.decision == .alert })
        #expect(outcome.observations.allSatisfy { $0.learned })
        #expect(outcome.position == "2:1:400:0:/log")
    }

    @Test func failuresAreNeitherLearntNorStored() throws {
        let c = AgentConfig()
        let processor = EventProcessor(rules: try RuleSet.load(directory: Paths.rules), detector: Detector(policy: c.policy, model: nil), config: c)
        let outcome = processor.process(records(["Nov  4 10:00:00 host sshd[1]: Failed password for alice from 10.1.0.1 port 22 ssh2"]),
                                        source: "file:/log", now: 0)
        #expect(outcome.events == 1 && outcome.verdicts.isEmpty && outcome.observations.isEmpty)
        #expect(outcome.position != nil, "the position moves past lines that teach nothing")
    }
}
