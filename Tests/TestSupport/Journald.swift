import Foundation

/// A failure of the test environment, said in words.
public struct SupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Paths relative to the package, found from this file so tests run from any directory.
public enum PackagePaths {
    public static let root: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()
    /// `../shared` beside the checkout (CI clones the repository with it).
    public static let shared = root + "/../shared"
    public static let bench = shared + "/bench"
}

/// A real journald for the tests that read the journal.
///
/// If no journald listens on its socket and we are root, journald is started (as
/// in a container without systemd as PID 1); otherwise the tests fail saying why.
/// The socket file alone proves nothing: a journald that died leaves it behind.
public enum Journald {
    public static let socket = "/run/systemd/journal/socket"

    /// Whether a datagram connect to journald's socket finds a listener.
    public static func listening() -> Bool {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in socket.utf8.enumerated() { buffer[i] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    static let ready: Result<Void, SupportError> = {
        if listening() { return .success(()) }
        guard getuid() == 0 else {
            return .failure(SupportError("journald is not listening on \(socket) and only root can start it"))
        }
        let daemon = "/lib/systemd/systemd-journald"
        guard FileManager.default.isExecutableFile(atPath: daemon) else {
            return .failure(SupportError("\(daemon) not found: install systemd"))
        }
        for name in ["socket", "stdout", "dev-log", "io.systemd.journal"] {
            unlink("/run/systemd/journal/\(name)")
        }
        try? FileManager.default.createDirectory(atPath: "/run/systemd/journal", withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: daemon)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return .failure(SupportError("cannot start journald: \(error)")) }
        for _ in 0..<100 where !listening() { usleep(100_000) }
        return listening() ? .success(()) : .failure(SupportError("journald did not start listening on \(socket)"))
    }()

    /// Starts journald if needed, once per test process.
    public static func require() throws { try ready.get() }

    /// Runs a command, feeding `input` on standard input; fails on a non-zero exit.
    public static func run(_ arguments: [String], input: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        let errors = Pipe()
        process.standardInput = pipe
        process.standardError = errors
        try process.run()
        if let input { pipe.fileHandleForWriting.write(Data(input.utf8)) }
        try pipe.fileHandleForWriting.close()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SupportError("\(arguments.joined(separator: " ")) failed (exit \(process.terminationStatus)): \(message)")
        }
    }

    /// Writes plain lines (each one MESSAGE) as a process named `comm`, through
    /// `journal_send.py`; `user` sends them as that ordinary user (a forged entry);
    /// `fields` (`KEY=value`) are added to every entry, to find them again.
    public static func send(_ lines: [String], comm: String = "sshd", user: String? = nil, rate: Double = 0,
                            fields: [String] = []) throws {
        var arguments = sender(comm: comm)
        if let user { arguments += ["--user", user] }
        if rate > 0 { arguments += ["--rate", String(rate)] }
        for field in fields { arguments += ["--field", field] }
        try run(arguments, input: lines.joined(separator: "\n") + "\n")
    }

    /// `journal_send.py` as a process named `comm`, which before it exits asks journald
    /// to take in everything queued (`journalctl --sync`): journald reads a sender's
    /// name from /proc when it gets to its entry, and a busy journald that gets there
    /// after the sender exited records no `_COMM`, so the entry is (rightly) not sshd's.
    public static func sender(comm: String = "sshd") -> [String] {
        let wrapper = """
            import atexit, os, runpy, subprocess, sys
            if os.geteuid() == 0:
                atexit.register(lambda: subprocess.run(["journalctl", "--sync"], stderr=subprocess.DEVNULL))
            sys.argv = sys.argv[1:]
            runpy.run_path(sys.argv[0], run_name="__main__")
            """
        return ["python3", "-c", wrapper, PackagePaths.bench + "/journal_send.py", "--comm", comm]
    }

    /// The journal's entries that match `match` (`FIELD=value`), as journalctl's JSON objects.
    public static func entries(matching match: String) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/journalctl")
        process.arguments = ["--no-pager", "-o", "json", "--all", match]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    private static let exclusive = NSLock()

    /// Runs `body` while no other test rotates or vacuums the journal: a vacuum
    /// deletes archived files, and with them entries another test has yet to read.
    public static func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        exclusive.lock()
        defer { exclusive.unlock() }
        return try body()
    }

    /// A string no other test run writes, to find one's own entries.
    public static func token() -> String { "t\(getpid())x\(UInt32.random(in: 0...UInt32.max))" }
}
