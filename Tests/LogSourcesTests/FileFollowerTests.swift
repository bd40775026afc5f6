import IPSightCore
import Foundation
import Testing
@testable import LogSources

/// Real files in a temporary directory, rotated the ways logrotate does it.
@Suite struct FileFollowerTests {
    final class Scratch: @unchecked Sendable {
        let dir: String
        init(_ name: String) throws {
            dir = NSTemporaryDirectory() + "ipsight-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: dir) }
        func path(_ name: String) -> String { dir + "/" + name }

        func append(_ name: String, _ text: String) throws {
            let p = path(name)
            if !FileManager.default.fileExists(atPath: p) { FileManager.default.createFile(atPath: p, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: p))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            try handle.close()
        }

        func append(_ name: String, bytes: [UInt8]) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path(name)))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(bytes))
            try handle.close()
        }

        /// copytruncate: copy the file aside, then cut the original to zero in place.
        func copyTruncate(_ name: String, to rotated: String) throws {
            try FileManager.default.copyItem(atPath: path(name), toPath: path(rotated))
            #expect(truncate(path(name), 0) == 0)
        }

        func rename(_ name: String, to rotated: String) {
            #expect(Foundation.rename(path(name), path(rotated)) == 0)
        }
    }

    /// Polls until idle and returns the lines read and the last position.
    func drain(_ follower: FileFollower) throws -> ([String], FilePosition?) {
        var lines: [String] = []
        var last: FilePosition?
        for _ in 0..<100 {
            let progress = try follower.poll { line, position in
                lines.append(String(decoding: line, as: UTF8.self))
                last = position
            }
            if progress == .idle || progress == .end { break }
        }
        return (lines, last)
    }

    @Test func readsOnceWithAPartialLastLine() throws {
        let s = try Scratch("once")
        try s.append("a.log", "one\ntwo\r\nthree")
        let (lines, _) = try drain(FileFollower(path: s.path("a.log")))
        #expect(lines == ["one", "two", "three"])
    }

    @Test func waitsForThePartialLineToEnd() throws {
        let s = try Scratch("partial")
        try s.append("a.log", "one\ntw")
        let f = FileFollower(path: s.path("a.log"), follow: true)
        #expect(try drain(f).0 == ["one"])
        try s.append("a.log", "o\nthree\n")
        #expect(try drain(f).0 == ["two", "three"])
    }

    @Test func fileThatAppearsLater() throws {
        let s = try Scratch("late")
        let f = FileFollower(path: s.path("late.log"), follow: true)
        #expect(try f.poll { _, _ in } == .idle)
        try s.append("late.log", "hello\n")
        #expect(try drain(f).0 == ["hello"])
        #expect(throws: SourceError.self) { try FileFollower(path: s.path("missing.log")).poll { _, _ in } }
    }

    @Test func renameAndCreateRotation() throws {
        let s = try Scratch("rename")
        try s.append("auth.log", "a1\na2\n")
        let f = FileFollower(path: s.path("auth.log"), follow: true)
        #expect(try drain(f).0 == ["a1", "a2"])
        // The daemon writes a last line into the old file after the rename, then the new file appears.
        s.rename("auth.log", to: "auth.log.1")
        try s.append("auth.log.1", "a3\n")
        #expect(try drain(f).0 == ["a3"])
        try s.append("auth.log", "b1\nb2\n")
        #expect(try drain(f).0 == ["b1", "b2"])
        #expect(f.rotations == 1)
        try s.append("auth.log", "b3\n")
        #expect(try drain(f).0 == ["b3"])
    }

    @Test func copyTruncateRotation() throws {
        let s = try Scratch("copytruncate")
        try s.append("auth.log", "a1\na2\n")
        let f = FileFollower(path: s.path("auth.log"), follow: true)
        #expect(try drain(f).0 == ["a1", "a2"])
        try s.copyTruncate("auth.log", to: "auth.log.1")
        #expect(try drain(f).0 == [])
        try s.append("auth.log", "b1\n")
        #expect(try drain(f).0 == ["b1"])
        #expect(f.truncations == 1)
    }

    @Test func truncatedAndRefilledPastTheOffsetIsNoticedByTheFirstLine() throws {
        let s = try Scratch("refill")
        try s.append("auth.log", "a1\n")
        let f = FileFollower(path: s.path("auth.log"), follow: true)
        #expect(try drain(f).0 == ["a1"])
        #expect(truncate(s.path("auth.log"), 0) == 0)
        try s.append("auth.log", "b1 is longer\nb2\n")
        #expect(try drain(f).0 == ["b1 is longer", "b2"])
    }

    @Test func resumesFromASavedPositionWithoutLossOrRepeats() throws {
        let s = try Scratch("resume")
        try s.append("auth.log", "l1\nl2\nl3\n")
        let first = FileFollower(path: s.path("auth.log"), follow: true)
        var seen: [String] = []
        var saved: FilePosition?
        _ = try first.poll { line, position in
            if seen.count < 2 {
                seen.append(String(decoding: line, as: UTF8.self))
                saved = position
            }
        }
        let text = try #require(saved).serialized
        let restored = try #require(FilePosition(serialized: text))
        #expect(restored == saved)
        try s.append("auth.log", "l4\n")
        let second = FileFollower(path: s.path("auth.log"), follow: true, from: restored)
        seen += try drain(second).0
        #expect(seen == ["l1", "l2", "l3", "l4"])
    }

    @Test func resumeAfterARotationWhileStoppedReadsTheRestOfTheOldFileFirst() throws {
        let s = try Scratch("resume-rotated")
        try s.append("auth.log", "l1\nl2\n")
        let (_, saved) = try drain(FileFollower(path: s.path("auth.log"), follow: true))
        try s.append("auth.log", "l3\n")
        s.rename("auth.log", to: "auth.log.1")
        try s.append("auth.log", "m1\n")
        let second = FileFollower(path: s.path("auth.log"), follow: true, from: try #require(saved))
        #expect(try drain(second).0 == ["l3", "m1"])
    }

    @Test func resumeAfterCopyTruncateWhileStoppedStartsOver() throws {
        let s = try Scratch("resume-truncated")
        try s.append("auth.log", "l1 long first line\nl2\n")
        let (_, saved) = try drain(FileFollower(path: s.path("auth.log"), follow: true))
        try s.copyTruncate("auth.log", to: "auth.log.1")
        try s.append("auth.log", "m1\nm2 another line that is long enough\n")
        let second = FileFollower(path: s.path("auth.log"), follow: true, from: try #require(saved))
        #expect(try drain(second).0 == ["m1", "m2 another line that is long enough"])
    }

    @Test func aMegabyteLineAndBinaryGarbageAreSkippedAndCounted() throws {
        let s = try Scratch("garbage")
        try s.append("auth.log", "before\n" + String(repeating: "x", count: 1 << 20) + "\nafter\n")
        var garbage: [UInt8] = []
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200_000 { garbage.append(UInt8.random(in: 0...255, using: &rng)) }
        garbage.append(0) // at least one line holds a NUL
        garbage.append(0x0A)
        try s.append("auth.log", bytes: garbage)
        try s.append("auth.log", "last\n")
        let f = FileFollower(path: s.path("auth.log"), maxLineLength: 4096)
        var decoder = LineDecoder()
        var kept: [String] = []
        var refused = 0
        try f.run { line, _ in
            if let r = decoder.decode(line) { kept.append(r.message) } else { refused += 1 }
        }
        #expect(f.skips.longLines >= 1)
        #expect(f.skips.binaryLines + refused >= 1)
        #expect(kept.first == "before")
        #expect(kept.contains("after"))
        #expect(kept.last == "last")
        #expect(!kept.contains { $0.utf8.count > 4096 })
    }

    @Test func anEndlessLineWithoutNewlineNeverGrowsTheBuffer() throws {
        let s = try Scratch("endless")
        let f = FileFollower(path: s.path("a.log"), follow: true, maxLineLength: 1024)
        try s.append("a.log", String(repeating: "y", count: 3 << 20))
        #expect(try drain(f).0 == [])
        try s.append("a.log", "\nok\n")
        #expect(try drain(f).0 == ["ok"])
        #expect(f.skips.longLines == 1)
    }

    @Test func standardInputStyleDescriptor() throws {
        let s = try Scratch("fd")
        try s.append("in.log", "x\ny")
        let fd = open(s.path("in.log"), O_RDONLY)
        defer { close(fd) }
        let (lines, _) = try drain(FileFollower(fileDescriptor: fd))
        #expect(lines == ["x", "y"])
    }
}

@Suite struct FileSourceTests {
    @Test func recordsWithPositionsThenTheEnd() throws {
        let s = try FileFollowerTests.Scratch("source")
        let text = "Nov  4 10:00:00 h sshd[1]: one\nplain line\n"
        try s.append("auth.log", text)
        let source: any LogSource = FileSource(path: s.path("auth.log"), follow: false,
                                               decoder: LineDecoder(header: SyslogHeaderParser(timeZone: .utc)))
        let batch = try #require(try source.nextBatch())
        #expect(batch.map(\.message) == ["one", "plain line"])
        #expect(batch.map(\.identifier) == ["sshd", nil])
        #expect(batch.map(\.line) == [1, 2])
        guard case .file(let position) = batch[1].position else {
            Issue.record("no file position")
            return
        }
        #expect(position.offset == UInt64(text.utf8.count))
        #expect(try source.nextBatch() == nil)
    }

    @Test func followingWaitsUntilStopped() throws {
        let s = try FileFollowerTests.Scratch("source-follow")
        try s.append("auth.log", "a\n")
        let source = FileSource(path: s.path("auth.log"), follow: true)
        #expect(try source.nextBatch()?.map(\.message) == ["a"])
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) {
            try? s.append("auth.log", "b\n")
        }
        #expect(try source.nextBatch()?.map(\.message) == ["b"])
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { source.stop() }
        #expect(try source.nextBatch() == nil)
    }
}
