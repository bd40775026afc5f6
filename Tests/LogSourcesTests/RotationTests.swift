import IPSightCore
import Foundation
import Testing
@testable import LogSources

/// Every rotation scheme logrotate offers, run by the real `logrotate` on real
/// files, with a follower polling through the rotations and with followers
/// stopped before them and resumed from a serialized position after: every
/// line is read exactly once, in order, and what cannot be read is reported.
@Suite struct RotationTests {
    /// A log directory, a logrotate config and state beside it, and a writer
    /// that behaves like a daemon: it keeps its descriptor open across a rename
    /// until told to reopen (postrotate), and appends (copytruncate needs O_APPEND).
    final class Setup: @unchecked Sendable {
        let root: FileFollowerTests.Scratch
        let logs: String
        let live: String
        private var writer: Int32 = -1
        private(set) var written: [String] = []

        init(_ name: String, options: String, liveName: String = "live.log") throws {
            root = try FileFollowerTests.Scratch(name)
            logs = root.path("logs")
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            live = logs + "/" + liveName
            let config = "\"\(live)\" {\n\(options)\n}\n"
            try config.write(toFile: root.path("logrotate.conf"), atomically: true, encoding: .utf8)
            reopen()
        }

        deinit { if writer >= 0 { close(writer) } }

        /// What the daemon does after logrotate's postrotate: write to the path's file from now on.
        func reopen() {
            if writer >= 0 { close(writer) }
            writer = open(live, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            precondition(writer >= 0, "cannot open \(live): \(errno)")
        }

        /// Appends `count` numbered lines shaped like sshd's.
        func write(_ count: Int) {
            var text = ""
            for _ in 0..<count {
                let n = written.count
                let line = "Dec  6 10:\(n / 60 % 60 < 10 ? "0" : "")\(n / 60 % 60):\(n % 60 < 10 ? "0" : "")\(n % 60) host sshd[\(1000 + n)]: "
                    + "Accepted password for user\(n % 17) from 10.0.\(n % 200).\(n % 250 + 1) port \(20000 + n) ssh2 #\(n)"
                written.append(line)
                text += line + "\n"
            }
            var bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { Glibc.write(writer, $0.baseAddress! + offset, $0.count - offset) }
                precondition(n > 0, "write failed: \(errno)")
                offset += n
            }
            bytes.removeAll()
        }

        /// `logrotate -s STATE -f CONF`, the real binary.
        func rotate(_ sourceLocation: SourceLocation = #_sourceLocation) throws {
            // Writes after a rotation get later modification times than writes
            // before it, as they do on a real system (file times can be as coarse
            // as the kernel's tick): wait for the file clock to move on.
            let probe = root.path("clock")
            var before = stat(), now = stat()
            if stat(live, &before) == 0 {
                for _ in 0..<10_000 {
                    _ = FileManager.default.createFile(atPath: probe, contents: Data([1]))
                    if stat(probe, &now) == 0, modificationTime(now) > modificationTime(before) { break }
                    usleep(500)
                }
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: try Self.logrotate())
            process.arguments = ["-s", root.path("logrotate.state"), "-f", root.path("logrotate.conf")]
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "logrotate: \(message)", sourceLocation: sourceLocation)
        }

        static func logrotate() throws -> String {
            for path in ["/usr/sbin/logrotate", "/sbin/logrotate", "/usr/bin/logrotate"] where access(path, X_OK) == 0 {
                return path
            }
            throw Missing(what: "logrotate is not installed (Debian: apt-get install logrotate; deploy/setup test installs it)")
        }

        var files: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []).sorted()
        }
    }

    struct Missing: Error, CustomStringConvertible { var what: String; var description: String { what } }

    /// A logrotate configuration under test, and how the daemon reacts to it.
    struct Scheme: CustomTestStringConvertible, Sendable {
        var name: String
        var options: String
        /// copytruncate: the daemon keeps writing through its descriptor.
        var copytruncate = false
        /// The names carry the time to the second: one rotation per second at most.
        var perSecond = false
        var liveName = "live.log"
        var testDescription: String { name }
    }

    static let schemes: [Scheme] = [
        Scheme(name: "create, numbered", options: "rotate 5\ncreate"),
        Scheme(name: "create, start 0", options: "rotate 5\ncreate\nstart 0"),
        Scheme(name: "nocreate (the daemon recreates the file)", options: "rotate 5\nnocreate"),
        Scheme(name: "dateext", options: "rotate 5\ncreate\ndateext\ndateformat -%Y%m%d%H%M%S", perSecond: true),
        Scheme(name: "dateext with dashes, compress", options: "rotate 5\ncreate\ndateext\ndateformat _%Y-%m-%d-%H%M%S\ncompress",
               perSecond: true),
        Scheme(name: "compress", options: "rotate 5\ncreate\ncompress"),
        Scheme(name: "compress, delaycompress", options: "rotate 5\ncreate\ncompress\ndelaycompress"),
        Scheme(name: "extension .log, compress, delaycompress", options: "rotate 5\ncreate\nextension .log\ncompress\ndelaycompress"),
        Scheme(name: "copytruncate", options: "rotate 5\ncopytruncate", copytruncate: true),
        Scheme(name: "copytruncate, compress", options: "rotate 5\ncopytruncate\ncompress", copytruncate: true),
        Scheme(name: "copytruncate, compress, delaycompress, dateext", options: "rotate 5\ncopytruncate\ncompress\ndelaycompress\ndateext\ndateformat .%Y%m%d%H%M%S",
               copytruncate: true, perSecond: true),
    ]

    /// Rotates, then does what the daemon does after logrotate's postrotate.
    static func rotate(_ setup: Setup, _ scheme: Scheme) throws {
        if scheme.perSecond {
            // Dated names hold seconds: a second rotation within the same second is refused by logrotate.
            let start = time(nil)
            while time(nil) == start { usleep(20_000) }
        }
        try setup.rotate()
        if !scheme.copytruncate { setup.reopen() }
    }

    /// Where two runs of lines first differ, briefly; nil when they are the same.
    static func difference(_ read: [String], _ expected: [String]) -> String? {
        func number(_ line: String) -> String { line.split(separator: "#").last.map(String.init) ?? line }
        if let i = read.indices.first(where: { $0 < expected.count && read[$0] != expected[$0] }) {
            return "line \(i) is #\(number(read[i])), expected #\(number(expected[i])) (\(read.count) read, \(expected.count) written)"
        }
        if read.count != expected.count {
            return "\(read.count) lines read, \(expected.count) expected"
                + (read.count > expected.count ? "; extra from #\(number(read[expected.count]))" : "; missing from #\(number(expected[read.count]))")
        }
        return nil
    }

    /// Polls until nothing is left for now.
    static func drain(_ follower: FileFollower, into lines: inout [String]) throws {
        for _ in 0..<10_000 {
            let progress = try follower.poll { line, _ in lines.append(String(decoding: line, as: UTF8.self)) }
            if progress == .idle || progress == .end { return }
        }
    }

    /// Reads what is there as a chain of followers, each killed after `step`
    /// lines: it saves the position of the last line it took, serialized, and
    /// the next starts from it. Positions must be resumable at every line.
    static func readKilledEvery(_ step: Int, path: String, from start: FilePosition?,
                                gaps: inout [FileGap]) throws -> ([String], FilePosition?) {
        var saved = start
        var lines: [String] = []
        for _ in 0..<100_000 {
            let follower = FileFollower(path: path, follow: true, from: saved.flatMap { FilePosition(serialized: $0.serialized) })
            var found: [FileGap] = []
            follower.onGap = { found.append($0) }
            var taken = 0
            polling: for _ in 0..<1000 {
                let progress = try follower.poll { line, position in
                    guard taken < step else { return }
                    taken += 1
                    lines.append(String(decoding: line, as: UTF8.self))
                    saved = position
                }
                if taken >= step || progress == .idle || progress == .end { break polling }
            }
            gaps += found
            if taken < step { break }
        }
        return (lines, saved)
    }

    /// The first `count` lines and the position after them: a follower killed there.
    static func readFirst(_ count: Int, path: String) throws -> ([String], FilePosition) {
        let follower = FileFollower(path: path, follow: true)
        var lines: [String] = []
        var saved: FilePosition?
        _ = try follower.poll { line, position in
            guard lines.count < count else { return }
            lines.append(String(decoding: line, as: UTF8.self))
            saved = position
        }
        return (lines, try #require(saved))
    }

    // MARK: - While running

    @Test(arguments: schemes)
    func whileRunningEveryLineOnceInOrder(_ scheme: Scheme) throws {
        let setup = try Setup("running", options: scheme.options, liveName: scheme.liveName)
        let follower = FileFollower(path: setup.live, follow: true)
        var gaps: [FileGap] = []
        follower.onGap = { gaps.append($0) }
        var read: [String] = []
        setup.write(40)
        try Self.drain(follower, into: &read)
        // Lines the follower has not read yet when logrotate runs.
        setup.write(25)
        try setup.rotate()
        if !scheme.copytruncate {
            // The daemon writes into the renamed file until it reopens its log.
            setup.write(5)
            try Self.drain(follower, into: &read)
            setup.reopen()
        }
        setup.write(10)
        try Self.drain(follower, into: &read)
        // Three rotations between two polls (the follower was held up).
        setup.write(15)
        for _ in 0..<3 {
            try Self.rotate(setup, scheme)
            setup.write(12)
        }
        try Self.drain(follower, into: &read)
        setup.write(3)
        try Self.drain(follower, into: &read)
        #expect(Self.difference(read, setup.written) == nil, "every line once, in order; files: \(setup.files)")
        #expect(gaps.isEmpty, "\(gaps)")
    }

    /// A writer thread (3,000 lines over about two seconds), logrotate run three
    /// times twice in a row, and a follower thread polling at the agent's
    /// interval, all at once.
    @Test(arguments: [schemes[6], schemes[9]])
    func concurrentWriterRotationsAndFollower(_ scheme: Scheme) throws {
        let setup = try Setup("concurrent", options: scheme.options)
        let total = 3000
        let lock = NSLock()
        let result = Shared()
        let writer = Thread {
            for _ in 0..<total / 10 {
                // copytruncate loses what the daemon writes between logrotate's copy and
                // truncation (logrotate documents it); the writer waits out that moment.
                lock.withLock { setup.write(10) }
                usleep(7000)
            }
        }
        let reader = Thread {
            let follower = FileFollower(path: setup.live, follow: true)
            var read: [String] = []
            var gaps: [FileGap] = []
            follower.onGap = { gaps.append($0) }
            let deadline = Date(timeIntervalSinceNow: 120)
            while read.count < total && Date() < deadline {
                let progress = try? follower.poll { line, _ in read.append(String(decoding: line, as: UTF8.self)) }
                if progress == .idle || progress == nil { Clock.sleep(follower.pollInterval) }
            }
            result.finish(read, gaps)
        }
        reader.start()
        writer.start()
        for _ in 0..<3 {
            usleep(400_000)
            for _ in 0..<2 {
                try lock.withLock {
                    try setup.rotate()
                    if !scheme.copytruncate { setup.reopen() }
                }
            }
        }
        let (read, gaps) = result.wait()
        #expect(Self.difference(read, lock.withLock { setup.written }) == nil, "files: \(setup.files)")
        #expect(gaps.isEmpty, "\(gaps)")
    }

    // MARK: - While stopped

    @Test(arguments: schemes)
    func whileStoppedResumesThroughEveryGeneration(_ scheme: Scheme) throws {
        let setup = try Setup("stopped", options: scheme.options, liveName: scheme.liveName)
        setup.write(50)
        var gaps: [FileGap] = []
        // Stopped after 30 of the 50 lines (a SIGKILL after its last commit).
        let (first, saved) = try Self.readFirst(30, path: setup.live)
        var read = first
        #expect(read.count == 30)
        // While stopped: three rotations, lines in every generation.
        for _ in 0..<3 {
            setup.write(20)
            try Self.rotate(setup, scheme)
        }
        setup.write(20)
        // Resumed, and killed every 7 lines on the way: inside rotated files,
        // compressed ones too, and between generations.
        let rest = try Self.readKilledEvery(7, path: setup.live, from: saved, gaps: &gaps).0
        read += rest
        #expect(Self.difference(read, setup.written) == nil, "every line once, in order; files: \(setup.files)")
        #expect(gaps.isEmpty, "\(gaps)")
    }

    @Test func stoppedWhileTheFileWasRenamedAndNotYetRecreated() throws {
        let setup = try Setup("not-recreated", options: "rotate 5\nnocreate")
        setup.write(10)
        var read: [String] = []
        var follower = FileFollower(path: setup.live, follow: true)
        try Self.drain(follower, into: &read)
        let saved = follower.position
        setup.write(5)
        try setup.rotate()
        // The daemon has not reopened yet: no live file. The rest of the old one is read.
        follower = FileFollower(path: setup.live, follow: true, from: saved)
        try Self.drain(follower, into: &read)
        #expect(Self.difference(read, setup.written) == nil)
        setup.write(2)  // still into the renamed file
        try Self.drain(follower, into: &read)
        setup.reopen()
        setup.write(4)
        try Self.drain(follower, into: &read)
        #expect(Self.difference(read, setup.written) == nil)
    }

    @Test func aPlainFileIsReadOnceWithTheRotatedGenerationsFirst() throws {
        // `ipsight parse --state` from cron: not following, a position saved before two rotations.
        let setup = try Setup("once", options: "rotate 5\ncreate\ncompress\ndelaycompress")
        setup.write(20)
        var read: [String] = []
        let first = FileFollower(path: setup.live)
        try Self.drain(first, into: &read)
        let saved = first.position
        for _ in 0..<2 {
            setup.write(10)
            try setup.rotate()
            setup.reopen()
        }
        setup.write(10)
        let second = FileFollower(path: setup.live, from: saved)
        var progress = FileFollower.Progress.idle
        for _ in 0..<1000 where progress != .end {
            progress = try second.poll { line, _ in read.append(String(decoding: line, as: UTF8.self)) }
        }
        #expect(progress == .end)
        #expect(Self.difference(read, setup.written) == nil)
    }

    // MARK: - Gaps

    @Test func aDeletedRotatedFileIsAGapReportedOnceWithWhatWasLost() throws {
        let setup = try Setup("gap-deleted", options: "rotate 5\ncreate")
        setup.write(30)
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        try Self.drain(first, into: &read)
        let saved = first.position
        setup.write(10)                       // never read: deleted below
        try setup.rotate()
        setup.reopen()
        #expect(unlink(setup.live + ".1") == 0)
        setup.write(15)
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        try Self.drain(second, into: &read)
        setup.write(5)
        try Self.drain(second, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<30]) + Array(setup.written[40...])) == nil)
        #expect(gaps.count == 1, "once per gap: \(gaps)")
        #expect(second.gaps == 1)
        let gap = try #require(gaps.first)
        #expect(gap.path == setup.live)
        #expect(gap.files == 1)
        #expect(gap.detail.contains("after offset \(saved.offset)"), "\(gap)")
        #expect(gap.detail.contains("no longer beside it"), "\(gap)")
    }

    /// With the position's modification time, and without it (saved by an earlier version).
    @Test(arguments: [true, false])
    func generationsDeletedByLogrotateWhileStopped(withTime: Bool) throws {
        // rotate 1: two rotations while stopped delete the file the follower was in;
        // the newer generation still there and the live file are read.
        let setup = try Setup("gap-rotate1", options: "rotate 1\ncreate")
        setup.write(30)
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        try Self.drain(first, into: &read)
        var saved = first.position
        #expect(saved.modified != 0)
        if !withTime { saved.modified = 0 }
        setup.write(10)                       // lost with the deleted generation
        try setup.rotate()
        setup.reopen()
        setup.write(12)
        try setup.rotate()
        setup.reopen()
        setup.write(8)
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        try Self.drain(second, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<30]) + Array(setup.written[40...])) == nil)
        #expect(gaps.count == 1 && gaps.first?.files == 1, "\(gaps)")
    }

    @Test func aLiveFileReplacedWhileStoppedDoesNotReadOlderGenerationsAgain() throws {
        // Deleted by hand and created again while the follower was stopped: the
        // rotated generations beside it are older than the saved file, read before.
        let setup = try Setup("gap-replaced", options: "rotate 5\ncreate\ncompress\ndelaycompress")
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        for _ in 0..<3 {
            setup.write(10)
            try Self.drain(first, into: &read)
            try setup.rotate()
            setup.reopen()
        }
        setup.write(10)
        try Self.drain(first, into: &read)
        let saved = first.position
        setup.write(4)                        // lost with the deleted file
        #expect(unlink(setup.live) == 0)
        setup.reopen()
        setup.write(6)
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        try Self.drain(second, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<40]) + Array(setup.written[44...])) == nil, "\(setup.files)")
        #expect(gaps.count == 1 && gaps.first?.detail.contains("no longer beside it") == true, "\(gaps)")
    }

    @Test func anUnreadableCompressionIsAGapNamingItsFormat() throws {
        let setup = try Setup("gap-xz", options: "rotate 5\ncreate\ncompress\ndelaycompress\ncompresscmd /usr/bin/xz\ncompressext .xz")
        try #require(access("/usr/bin/xz", X_OK) == 0, "xz is not installed (Debian: xz-utils)")
        setup.write(30)
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        try Self.drain(first, into: &read)
        let saved = first.position
        setup.write(10)                       // ends up in live.log.2.xz
        try setup.rotate()
        setup.reopen()
        setup.write(12)                       // live.log.1, plain (delaycompress)
        try setup.rotate()
        setup.reopen()
        setup.write(8)
        #expect(FileManager.default.fileExists(atPath: setup.live + ".2.xz"), "\(setup.files)")
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        try Self.drain(second, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<30]) + Array(setup.written[40...])) == nil)
        #expect(gaps.count == 1, "\(gaps)")
        let detail = gaps.first?.detail ?? ""
        #expect(detail.contains("live.log.2.xz (xz,") && detail.contains("only gzip"), "\(detail)")
    }

    @Test func newerGenerationsInAnUnreadableFormatAreCountedWhenPassed() throws {
        // Running, xz without delaycompress: two rotations between polls. The
        // follower's own file is read to its end through its descriptor; the
        // newer generation, compressed at once, cannot be read.
        let setup = try Setup("gap-xz-running", options: "rotate 5\ncreate\ncompress\ncompresscmd /usr/bin/xz\ncompressext .xz")
        try #require(access("/usr/bin/xz", X_OK) == 0, "xz is not installed (Debian: xz-utils)")
        let follower = FileFollower(path: setup.live, follow: true)
        var gaps: [FileGap] = []
        follower.onGap = { gaps.append($0) }
        var read: [String] = []
        setup.write(10)
        try Self.drain(follower, into: &read)
        setup.write(5)
        try setup.rotate()
        setup.reopen()
        setup.write(7)                        // lost: only in live.log.1.xz after the next rotation
        try setup.rotate()
        setup.reopen()
        setup.write(3)
        try Self.drain(follower, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<15]) + Array(setup.written[22...])) == nil)
        #expect(gaps.count == 1 && gaps.first?.files == 1, "\(gaps)")
        #expect(gaps.first?.detail.contains("live.log.1.xz (xz,") == true, "\(gaps)")
    }

    @Test func copytruncateWithoutAKeptCopyIsAGap() throws {
        // rotate 0: logrotate truncates and keeps no copy; lines not read before are lost.
        let setup = try Setup("gap-truncate", options: "rotate 0\ncopytruncate")
        let follower = FileFollower(path: setup.live, follow: true)
        var gaps: [FileGap] = []
        follower.onGap = { gaps.append($0) }
        var read: [String] = []
        setup.write(10)
        try Self.drain(follower, into: &read)
        setup.write(4)
        try setup.rotate()
        setup.write(6)
        try Self.drain(follower, into: &read)
        #expect(Self.difference(read, Array(setup.written[0..<10]) + Array(setup.written[14...])) == nil)
        #expect(gaps.count == 1, "\(gaps)")
        #expect(gaps.first?.detail.contains("truncated and no copy") == true, "\(gaps)")
    }

    @Test func aCutOffGzipGenerationIsReadAsFarAsItGoesAndReported() throws {
        let setup = try Setup("gap-gzip", options: "rotate 5\ncreate\ncompress")
        setup.write(10)
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        try Self.drain(first, into: &read)
        let saved = first.position
        setup.write(400)
        try setup.rotate()
        setup.reopen()
        setup.write(5)
        // A disk problem cut the compressed file short.
        let gz = setup.live + ".1.gz"
        var st = stat()
        #expect(stat(gz, &st) == 0)
        #expect(truncate(gz, off_t(st.st_size / 2)) == 0)
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        var rest: [String] = []
        try Self.drain(second, into: &rest)
        #expect(gaps.count == 1 && gaps.first?.detail.contains("ends early") == true, "\(gaps)")
        // What was read of it is a run of whole lines in order (the cut one dropped), then the live file.
        #expect(Array(rest.suffix(5)) == Array(setup.written.suffix(5)))
        let fromGzip = Array(rest.dropLast(5))
        #expect(fromGzip.count > 10 && fromGzip.count < 400)
        #expect(Self.difference(fromGzip, Array(setup.written[10..<(10 + fromGzip.count)])) == nil)
    }

    @Test func aCorruptGzipGenerationIsReadUpToTheDamageAndReported() throws {
        let setup = try Setup("gap-corrupt", options: "rotate 5\ncreate\ncompress")
        setup.write(10)
        var read: [String] = []
        let first = FileFollower(path: setup.live, follow: true)
        try Self.drain(first, into: &read)
        let saved = first.position
        setup.write(2000)
        try setup.rotate()
        setup.reopen()
        setup.write(5)
        // Random bytes over the second half of the compressed data.
        let gz = setup.live + ".1.gz"
        var data = try Data(contentsOf: URL(fileURLWithPath: gz))
        var rng = SystemRandomNumberGenerator()
        for i in (data.count / 2)..<(data.count - 8) { data[i] = UInt8.random(in: 0...255, using: &rng) }
        try data.write(to: URL(fileURLWithPath: gz))
        var gaps: [FileGap] = []
        let second = FileFollower(path: setup.live, follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        var rest: [String] = []
        try Self.drain(second, into: &rest)
        // Random bytes decode as deflate data for a while, so the damage shows as
        // corrupt data or as data running past the end, depending on the bytes.
        let detail = gaps.first?.detail ?? ""
        #expect(gaps.count == 1 && (detail.contains("corrupt gzip data") || detail.contains("ends early")), "\(gaps)")
        #expect(Array(rest.suffix(5)) == Array(setup.written.suffix(5)))
        // Whole lines in order up to the damage (what the damage decodes to is not compared).
        #expect(Self.difference(Array(rest.prefix(100)), Array(setup.written[10..<110])) == nil)
    }

    // MARK: - Which names are rotated generations

    @Test func onlyNamesLogrotateCouldHaveMadeAreConsidered() throws {
        let live = Array("auth.log".utf8)
        func parsed(_ name: String) -> Bool { RotatedFiles.parse(Array(name.utf8), liveName: live) != nil }
        for name in ["auth.log.1", "auth.log.12.gz", "auth.log-20261206", "auth.log-20261206.gz", "auth.log-2026-12-06-1796599101.xz",
                     "auth.log.20261206", "auth.log_2026-12-06", "auth.1.log", "auth.2.log.gz", "auth-20261206.log.bz2"] {
            #expect(parsed(name), "\(name)")
        }
        for name in ["auth.log", "auth.log.old", "auth.log.1.bak", "auth.log.swp", "auth.log1", "auth.log.gz", "auth.log-",
                     "authx.log.1", "auth.logs.1", "auth.log.1.gz.tmp", "auth.log.tmp", "auth.log.1~", "other.log.1", "auth.1.txt"] {
            #expect(!parsed(name), "\(name)")
        }
        #expect(RotatedFiles.parse(Array("auth.log.3.gz".utf8), liveName: live)?.key == .numbered(3))
        #expect(RotatedFiles.parse(Array("auth.log.20261206".utf8), liveName: live)?.key == .dated("20261206"))
        #expect(GenerationKey.numbered(2) < .numbered(1))
        #expect(GenerationKey.dated("20261205") < .dated("20261206"))
    }

    @Test func unrelatedFilesBesideItAreNeverRead() throws {
        // A saved file that is gone, and beside the live file only files that
        // merely look alike: none of them is read.
        let s = try FileFollowerTests.Scratch("unrelated")
        try s.append("auth.log", "a1 first line\na2\n")
        let first = FileFollower(path: s.path("auth.log"), follow: true)
        var read: [String] = []
        try Self.drain(first, into: &read)
        let saved = first.position
        #expect(unlink(s.path("auth.log")) == 0)
        try s.append("auth.log", "b1 new file\n")
        for name in ["auth.log.old", "auth.log.1.bak", "auth.logx.1", "auth.log~", "other.log.1", "auth.log.gz"] {
            try s.append(name, "do not read \(name)\n")
        }
        #expect(symlink(s.path("other.log.1"), s.path("auth.log.9")) == 0)
        var gaps: [FileGap] = []
        let second = FileFollower(path: s.path("auth.log"), follow: true, from: saved)
        second.onGap = { gaps.append($0) }
        try Self.drain(second, into: &read)
        #expect(Self.difference(read, ["a1 first line", "a2", "b1 new file"]) == nil)
        #expect(gaps.count == 1)
    }
}

/// What a reader thread hands back once it is done.
private final class Shared: @unchecked Sendable {
    private let condition = NSCondition()
    private var result: ([String], [FileGap])?

    func finish(_ lines: [String], _ gaps: [FileGap]) {
        condition.lock()
        result = (lines, gaps)
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> ([String], [FileGap]) {
        condition.lock()
        defer { condition.unlock() }
        while result == nil { condition.wait() }
        return result!
    }
}
