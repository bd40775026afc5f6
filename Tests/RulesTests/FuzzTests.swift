import IPSightCore
import Testing
import LogSources
@testable import Rules

/// Random and recombined lines through the whole decoder and rule set: nothing
/// may crash, and any event must carry a valid address or none.
@Suite struct FuzzTests {
    struct XorShift: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
    }

    static let fragments = [
        "Nov  4 10:00:00 h sshd[1]: ", "2018-11-14T10:00:00Z h sshd[1]: ", "<38>1 2018-11-14T10:00:00Z h sshd 1 - - ",
        "Accepted ", "password ", "for ", "invalid user ", "Invalid user ", "from ", "port ", "ssh2", ": ", "[preauth]",
        "192.0.2.1 ", "2001:db8::1 ", "::ffff:1.2.3.4", "%eth0", "99999 ", "65535", " ", "  ", "\"", "\\", "<", ">", "[", "]",
        "user=<", ">, method=PLAIN, rip=", ", lip=", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=",
        " user=", "vsftpd[1]: [", "] OK LOGIN: Client \"", "{\"user\": ", "\"ip\": ", "\"outcome\": \"success\"}", "1e999",
        " - alice [14/Nov/2018:10:00:00 +0000] \"GET / HTTP/1.1\" 200 1", "postfix/smtpd[1]: ", "warning: unknown[", "]: SASL LOGIN authentication failed: x",
        "openvpn[1]: ", ":1194 TLS: Username/Password authentication succeeded for username '", "'",
    ]

    @Test func randomAndRecombinedLinesNeverCrash() throws {
        let rules = try loadRules()
        var rng = XorShift(state: 0x9E37_79B9_7F4A_7C15)
        var decoder = LineDecoder(header: SyslogHeaderParser(timeZone: .utc, reference: ExampleCheck.reference))
        var events = 0
        for round in 0..<40_000 {
            var bytes: [UInt8] = []
            if round % 4 == 0 {
                for _ in 0..<Int.random(in: 0...200, using: &rng) { bytes.append(UInt8.random(in: 0...255, using: &rng)) }
            } else {
                for _ in 0..<Int.random(in: 1...12, using: &rng) {
                    bytes += Array(Self.fragments.randomElement(using: &rng)!.utf8)
                }
            }
            guard let record = bytes.withUnsafeBytes({ decoder.decode($0) }) else { continue }
            var trusted = record
            trusted.trusted = TrustedFields(comm: "sshd", uid: round % 2 == 0 ? "0" : "1000")
            for candidate in [record, trusted] {
                if case .event(let e) = rules.match(candidate) {
                    events += 1
                    if let ip = e.ip { #expect(IPAddressCheck.valid(ip), "\(ip) from \(record.message)") }
                    if let port = e.port { #expect((0...65_535).contains(port)) }
                    _ = EventJSON.line(e)
                }
            }
        }
        // Recombined fragments do form real lines now and then: the fuzzing reached the event code.
        #expect(events > 100)
    }
}

import IPInsights

enum IPAddressCheck {
    static func valid(_ text: String) -> Bool { IPAddress(text)?.description == text }
}
