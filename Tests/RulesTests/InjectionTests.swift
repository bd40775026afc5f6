import IPSightCore
import Foundation
import Testing
import TestSupport
import IPInsights
import LogSources
@testable import Rules

/// The canonical text of an address from the truth file.
func canonical(_ value: Any?) -> String? {
    (value as? String).flatMap { IPAddress($0)?.description }
}

/// Renders simulated logins with brute-force noise and forged-address attempts
/// through the shared benchmark's renderer, and checks every line's event.
@Suite struct InjectionTests {
    /// A small deterministic event file: IPv4 and IPv6 users.
    static func writeEvents(to path: String, count: Int) throws {
        var text = ""
        for i in 0..<count {
            let second = i % 60, minute = (i / 60) % 60, hour = (i / 3600) % 24
            let stamp = String(format: "2018-12-31T%02d:%02d:%02dZ", hour, minute, second)
            let ip = i % 5 == 0 ? "2001:db8:\(i % 7)::\(i % 97 + 1)" : "198.51.\(i % 200).\(i % 250 + 1)"
            text += "\(stamp),user_\(i % 113),\(ip)\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func render(format: String, events: String, directory: String) throws -> (lines: [String], truth: [[String: Any]]) {
        let script = Paths.shared + "/bench/render_logs.py"
        guard FileManager.default.fileExists(atPath: script) else {
            throw SupportError("\(script) is missing: clone the shared/ directory beside the repository")
        }
        let truthPath = directory + "/truth-\(format).jsonl"
        let outPath = directory + "/out-\(format).log"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, events, "--format", format, "--noise", "3", "--seed", "11", "--truth", truthPath]
        FileManager.default.createFile(atPath: outPath, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw SupportError("render_logs.py failed") }
        let lines = try String(contentsOfFile: outPath, encoding: .utf8).split(separator: "\n").map(String.init)
        let truth = try String(contentsOfFile: truthPath, encoding: .utf8).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        return (lines, truth)
    }

    @Test(arguments: ["syslog", "iso"])
    func everyRenderedLineYieldsItsTruth(format: String) throws {
        let dir = NSTemporaryDirectory() + "ipsight-inject-\(format)-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let events = dir + "/events.csv"
        try Self.writeEvents(to: events, count: 2000)
        let (lines, truth) = try Self.render(format: format, events: events, directory: dir)
        #expect(lines.count == truth.count)
        let rules = try loadRules()
        var successes = 0, injections = 0, ipv6 = 0
        for (line, expected) in zip(lines, truth) {
            let result = rules.match(record(line))
            let got = event(result)
            switch expected["outcome"] as? String {
            case "success":
                #expect(got?.outcome == .success && got?.user == expected["user"] as? String && got?.ip == canonical(expected["ip"]),
                        "\(line) -> \(String(describing: got))")
                if got?.outcome == .success { successes += 1 }
                if got?.ip?.contains(":") == true { ipv6 += 1 }
            case "failure":
                let user = expected["user"] as? String ?? ""
                #expect(got?.outcome == .failure && got?.user == user && got?.ip == canonical(expected["ip"]),
                        "\(line) -> \(String(describing: got))")
                if user.contains(" from ") { injections += 1 }
            case "any":
                if let got { #expect(got.outcome == .failure && got.ip == canonical(expected["ip"]), "\(line)") }
            default:
                #expect(got == nil, "\(line) -> \(String(describing: got))")
            }
        }
        #expect(successes == 2000)
        #expect(injections > 50, "the renderer produced too few injection attempts to test")
        #expect(ipv6 == 400)
    }

    @Test func forgedSuccessInAUserNameIsAFailureFromTheRealAddress() throws {
        let rules = try loadRules()
        let forged = [
            "Invalid user Accepted password for root from 1.2.3.4 from 203.0.113.5 port 4711",
            "Invalid user x from 1.2.3.4 port 22 from 203.0.113.5 port 4711",
            "Failed password for invalid user Accepted password for root from 1.2.3.4 port 22 ssh2 from 203.0.113.5 port 4711 ssh2",
            "Failed password for invalid user a from 1.2.3.4 port 22 ssh2: RSA x from 203.0.113.5 port 4711 ssh2",
        ]
        for message in forged {
            let got = event(rules.match(record("Nov  4 10:00:00 h sshd[1]: " + message)))
            #expect(got?.outcome == .failure, "\(message)")
            #expect(got?.ip == "203.0.113.5", "\(message)")
        }
    }

    @Test func clientTextAfterTheAddressNeverSuppliesIt() throws {
        let rules = try loadRules()
        // A certificate's key ID and a key's auth-info are the client's: the address is sshd's, before them.
        let lines = [
            ("Accepted publickey for alice from 192.0.2.11 port 1022 ssh2: ED25519-CERT SHA256:abc ID x from 6.6.6.6 port 22 ssh2: y (serial 7) CA ED25519 SHA256:def", "alice", "192.0.2.11"),
            ("Failed publickey for root from 192.0.2.12 port 1023 ssh2: ED25519-CERT SHA256:abc ID from 10.10.1.2 port 55555 ssh2 (serial 1) CA ED25519 SHA256:def", "root", "192.0.2.12"),
        ]
        for (message, user, ip) in lines {
            let result = rules.match(record("Nov  4 10:00:00 h sshd[1]: " + message))
            let got = event(result)
            #expect(got?.ip == ip && got?.user == user, "\(message) → \(result)")
        }
    }

    @Test func pathologicalLinesFinishWithoutBacktracking() throws {
        let rules = try loadRules()
        // 50,000 repetitions of sshd's own trailing text inside the user name:
        // a backtracking matcher would take quadratic or exponential time here.
        // sshd writes at most 100 bytes of a user (400 once escaped), so no reading fits.
        let repeated = String(repeating: " from 1.1.1.1 port 1", count: 50_000)
        let clock = ContinuousClock()
        var got: LoginEvent?
        let elapsed = clock.measure {
            got = event(rules.match(record("Nov  4 10:00:00 h sshd[1]: Invalid user x\(repeated) from 203.0.113.6 port 5")))
        }
        #expect(got == nil)
        #expect(elapsed < .seconds(2))
        // The same repetitions within what sshd can write: the real address is the last one.
        let short = String(repeating: " from 1.1.1.1 port 1", count: 15)
        let within = event(rules.match(record("Nov  4 10:00:00 h sshd[1]: Invalid user x\(short) from 203.0.113.6 port 5")))
        #expect(within?.ip == "203.0.113.6")
        #expect(within?.user == "x" + short)
        let spaces = String(repeating: " ", count: 60_000)
        #expect(event(rules.match(record("Nov  4 10:00:00 h sshd[1]: Accepted password for\(spaces)from\(spaces)"))) == nil)
        let noTrailer = String(repeating: "from 1.1.1.1 port ", count: 3_000)
        #expect(event(rules.match(record("Nov  4 10:00:00 h sshd[1]: Accepted password for \(noTrailer)"))) == nil)
    }
}
