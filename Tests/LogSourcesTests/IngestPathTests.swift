import IPSightCore
import Foundation
import Testing
import TestSupport
@testable import LogSources

/// Positions: kept in a file for `parse --state`, in the agent's store for `run`,
/// always through `PositionStore`.
@Suite struct PositionFileTests {
    @Test func savesAndLoadsAtomically() throws {
        let s = try FileFollowerTests.Scratch("state")
        let path = s.path("parse.state")
        #expect(try PositionFile(path: path).positions() == [:])
        let a = FilePosition(path: "/var/log/a:b.log", device: 1, inode: 2, offset: 3, headHash: 0xABC)
        let b = FilePosition(path: "/var/log/auth.log", device: 4, inode: 5, offset: 6, headHash: 7)
        let positions = [SourceKey.journal: "s=abc;i=1;b=def;m=0;t=1;x=2",
                         SourceKey.file(a.path): a.serialized, SourceKey.file(b.path): b.serialized]
        try PositionFile(path: path).save(positions)
        #expect(try PositionFile(path: path).positions() == positions)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == """
            journal s=abc;i=1;b=def;m=0;t=1;x=2
            file 2:1:3:abc:/var/log/a:b.log
            file 5:4:6:7:/var/log/auth.log

            """)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.dir) == ["parse.state"])
        // A save changes the positions it names and keeps the others.
        let store = try PositionFile(path: path)
        try store.save([SourceKey.journal: "s=new"])
        #expect(try PositionFile(path: path).positions()[SourceKey.journal] == "s=new")
        #expect(try PositionFile(path: path).positions()[SourceKey.file(b.path)] == b.serialized)
    }

    @Test func positionsWithAndWithoutTheModificationTime() throws {
        let timed = FilePosition(path: "/var/log/a:b.log", device: 1, inode: 2, offset: 3, headHash: 0xABC, modified: 1_796_599_101_123_456_789)
        #expect(timed.serialized == "2:1:3:abc@1796599101123456789:/var/log/a:b.log")
        #expect(FilePosition(serialized: timed.serialized) == timed)
        // As saved before the time was kept: loads with the time unknown.
        let old = try #require(FilePosition(serialized: "2:1:3:abc:/var/log/a:b.log"))
        #expect(old.modified == 0 && old.headHash == 0xABC && old.path == "/var/log/a:b.log")
        #expect(old.serialized == "2:1:3:abc:/var/log/a:b.log")
        #expect(FilePosition(serialized: "2:1:3:abc@x:/p") == nil)
    }

    @Test func malformedStateNamesTheLine() throws {
        #expect(throws: SourceError.invalidPosition("st:2: not a file position: 1:2:x:4:/p")) {
            try PositionFile.parse("journal c\nfile 1:2:x:4:/p\n", path: "st")
        }
        #expect(throws: SourceError.invalidPosition("st:1: expected 'journal CURSOR' or 'file POSITION'")) {
            try PositionFile.parse("bogus\n", path: "st")
        }
        let s = try FileFollowerTests.Scratch("state-binary")
        FileManager.default.createFile(atPath: s.path("st"), contents: Data([0xFF, 0xFE, 0x0A]))
        #expect(throws: SourceError.invalidPosition("\(s.path("st")): not UTF-8 text")) { try PositionFile(path: s.path("st")) }
    }
}

/// One path from the sources to a consumer: the plan makes the sources, the
/// group reads them on their own threads into one bounded queue.
@Suite struct SourceGroupTests {
    static func drain(_ group: SourceGroup, timeout: Double = 10) -> (records: [String: [LogRecord]], failures: [String: SourceError]) {
        var active = Set(group.keys)
        var records: [String: [LogRecord]] = [:]
        var failures: [String: SourceError] = [:]
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !active.isEmpty && Date() < deadline {
            switch group.next(timeout: 0.1) {
            case .records(let key, let batch)?: records[key, default: []] += batch
            case .finished(let key)?: active.remove(key)
            case .failed(let key, let error)?:
                failures[key] = error
                active.remove(key)
            case nil: break
            }
        }
        return (records, failures)
    }

    static func records(_ messages: [String]) -> [LogRecord] { messages.map { LogRecord(message: $0) } }

    @Test func everySourceIsReadInOrderUntilItEnds() {
        let group = SourceGroup(capacity: 2)
        group.add("a", MemoryLogSource([Self.records(["a1", "a2"]), Self.records(["a3"])]))
        group.add("b", MemoryLogSource([Self.records(["b1"]), [], Self.records(["b2"])]))
        let (records, failures) = Self.drain(group)
        #expect(records["a"]?.map(\.message) == ["a1", "a2", "a3"])
        #expect(records["b"]?.map(\.message) == ["b1", "b2"])
        #expect(failures.isEmpty)
        #expect(group.join(timeout: 5))
    }

    @Test func aSourceThatGetsAheadWaitsForTheConsumer() throws {
        let source = MemoryLogSource((1...10).map { Self.records(["\($0)"]) })
        let group = SourceGroup(capacity: 2)
        group.add("a", source)
        // The reader fills the queue and then waits: two batches queued, one in its hands.
        try #require(waitUntil(seconds: 5) { source.pendingCount == 7 })
        Thread.sleep(forTimeInterval: 0.2)
        #expect(source.pendingCount == 7)
        let (records, _) = Self.drain(group)
        #expect(records["a"]?.map(\.message) == (1...10).map { "\($0)" })
    }

    @Test func aFailedSourceCanBeAddedAgainAndItsRefusalsStayCounted() {
        let failing = MemoryLogSource([Self.records(["x"])])
        failing.fail(.io(path: "/var/log/auth.log", operation: "read", errno: EIO))
        var refused = SkipCounts()
        refused.binaryLines = 2
        failing.refuse(refused)
        let group = SourceGroup()
        group.add("file:/var/log/auth.log", failing)
        let first = Self.drain(group)
        #expect(first.records["file:/var/log/auth.log"]?.map(\.message) == ["x"])
        #expect(first.failures["file:/var/log/auth.log"] == .io(path: "/var/log/auth.log", operation: "read", errno: EIO))
        group.add("file:/var/log/auth.log", MemoryLogSource([Self.records(["y"])]))
        #expect(Self.drain(group).records["file:/var/log/auth.log"]?.map(\.message) == ["y"])
        #expect(group.skips.binaryLines == 2)
    }

    @Test func stopEndsAFollowingSourceAndQueuedBatchesCanStillBeTaken() throws {
        let source = MemoryLogSource([Self.records(["a"])], follow: true)
        let group = SourceGroup()
        group.add("a", source)
        try #require(waitUntil(seconds: 5) { source.pendingCount == 0 })
        source.append(Self.records(["b"]))
        try #require(waitUntil(seconds: 5) { source.pendingCount == 0 })
        group.stop()
        #expect(group.join(timeout: 5))
        var taken: [String] = []
        while case .records(_, let batch)? = group.next(timeout: 0) { taken += batch.map(\.message) }
        #expect(taken == ["a", "b"])
    }

    /// A file read through the plan resumes after the position the consumer saved,
    /// in a `PositionFile` (`parse --state`) as in the agent's store.
    @Test func aPlanResumesFilesFromTheStore() throws {
        let s = try FileFollowerTests.Scratch("plan-resume")
        try s.append("auth.log", "one\ntwo\n")
        var plan = SourcePlan()
        plan.files = [s.path("auth.log")]
        func read() throws -> [String] {
            let store = try PositionFile(path: s.path("st"))
            let group = SourceGroup()
            try plan.start(in: group, store: store)
            let records = Self.drain(group).records[SourceKey.file(s.path("auth.log"))] ?? []
            if let last = records.last?.position.text { try store.save([SourceKey.file(s.path("auth.log")): last]) }
            return records.map(\.message)
        }
        #expect(try read() == ["one", "two"])
        try s.append("auth.log", "three\n")
        #expect(try read() == ["three"])
        #expect(try read() == [])
    }

    /// Starting at the end saves the end at once: a line written before the
    /// first read, and before a restart, is not skipped.
    @Test func startingAtTheEndSavesTheEndAtOnce() throws {
        let s = try FileFollowerTests.Scratch("plan-end")
        try s.append("auth.log", "old\n")
        var plan = SourcePlan()
        plan.files = [s.path("auth.log")]
        plan.startAtEnd = true
        let store = MemoryPositionStore()
        _ = try plan.makeSources(store: store)
        try s.append("auth.log", "new\n")
        let group = SourceGroup()
        try plan.start(in: group, store: store)
        #expect(Self.drain(group).records[SourceKey.file(s.path("auth.log"))]?.map(\.message) == ["new"])
    }

    @Test func onlyTheNamedSourceIsMadeAgain() throws {
        var plan = SourcePlan()
        plan.files = ["/nonexistent/a.log", "/nonexistent/b.log"]
        #expect(plan.keys == ["file:/nonexistent/a.log", "file:/nonexistent/b.log"])
        let sources = try plan.makeSources(store: MemoryPositionStore(), only: "file:/nonexistent/b.log")
        #expect(sources.map(\.key) == ["file:/nonexistent/b.log"])
    }
}
