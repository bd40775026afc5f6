import IPSightCore
import Foundation
import Testing
@testable import LogSources

@Suite struct SourceStateTests {
    @Test func savesAndLoadsAtomically() throws {
        let s = try FileFollowerTests.Scratch("state")
        let path = s.path("parse.state")
        #expect(try SourceState.load(path: path) == SourceState())
        let state = SourceState(journalCursor: "s=abc;i=1;b=def;m=0;t=1;x=2", files: [
            "/var/log/a:b.log": FilePosition(path: "/var/log/a:b.log", device: 1, inode: 2, offset: 3, headHash: 0xABC),
            "/var/log/auth.log": FilePosition(path: "/var/log/auth.log", device: 4, inode: 5, offset: 6, headHash: 7),
        ])
        try state.save(path: path)
        #expect(try SourceState.load(path: path) == state)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
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
            try SourceState(text: "journal c\nfile 1:2:x:4:/p\n", path: "st")
        }
        #expect(throws: SourceError.self) { try SourceState(text: "bogus\n") }
    }

    @Test func resumingAFileReadsOnlyWhatIsNew() throws {
        let s = try FileFollowerTests.Scratch("state-resume")
        try s.append("auth.log", "one\ntwo\n")
        func read(from state: SourceState) throws -> ([String], SourceState) {
            let follower = FileFollower(path: s.path("auth.log"), from: state.files[s.path("auth.log")])
            var lines: [String] = []
            var next = state
            try follower.run { line, position in
                lines.append(String(decoding: line, as: UTF8.self))
                next.files[position.path] = position
            }
            return (lines, next)
        }
        let (first, state1) = try read(from: SourceState())
        try s.append("auth.log", "three\n")
        try state1.save(path: s.path("st"))
        let (second, _) = try read(from: try SourceState.load(path: s.path("st")))
        #expect(first == ["one", "two"])
        #expect(second == ["three"])
    }
}
