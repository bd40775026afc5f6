import Testing
@testable import IPSightCore

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("192.168.1.2", "192.168.1.2"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("::ffff:10.10.1.2", "10.10.1.2"),           // IPv4-mapped folds to IPv4
        ("::FFFF:0a0a:0102", "10.10.1.2"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // RFC 5952: first longest run
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"), // a single zero group is not compressed
        ("::", "::"),
        ("::1", "::1"),
        ("1::", "1::"),
        ("fe80::1%eth0", "fe80::1"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
    func parsesAndFormats(_ text: String, _ canonical: String) throws {
        let ip = try #require(IPAddress(text))
        #expect(ip.description == canonical)
        #expect(IPAddress(canonical) == ip)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "01.2.3.4", "1..2.3", "1.2.3.4 ",
        " 1.2.3.4", "1.2.3.4%eth0", "a.b.c.d", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1:2", "1:2:",
        "12345::", "g::1", "::ffff:1.2.3", "1:2:3:4:5:6:7:1.2.3.4", "%eth0", "::1%",
        "1.2.3.4/24", "localhost",
    ])
    func rejectsMalformed(_ text: String) {
        #expect(IPAddress(text) == nil, "'\(text)' must not parse")
    }

    @Test func mappedAndPlainIPv4AreOneKey() throws {
        let a = try #require(IPAddress("10.1.2.3")), b = try #require(IPAddress("::ffff:10.1.2.3"))
        #expect(a == b && a.isIPv4 && a.ipv4 == 0x0A01_0203)
        let v6 = try #require(IPAddress("::10.1.2.3"))   // IPv4-compatible (deprecated) stays IPv6
        #expect(!v6.isIPv4)
    }

    @Test func masksWithinTheFamily() throws {
        let v4 = try #require(IPAddress("203.0.113.77"))
        #expect(v4.masked(to: 24).description == "203.0.113.0")
        #expect(v4.masked(to: 16).description == "203.0.0.0")
        #expect(v4.networkDescription(length: 24) == "203.0.113.0/24")
        let v6 = try #require(IPAddress("2001:db8:aaaa:bbbb:cccc::1"))
        #expect(v6.masked(to: 48).description == "2001:db8:aaaa::")
        #expect(v6.masked(to: 64).description == "2001:db8:aaaa:bbbb::")
        #expect(v6.masked(to: 0).description == "::")
    }
}
