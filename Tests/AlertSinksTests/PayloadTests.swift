import IPSightCore
import Foundation
import Testing
@testable import AlertSinks

@Suite("Payload shapes")
final class PayloadTests {
    let directory: URL
    init() throws { directory = try temporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: directory) }

    func parse(_ bytes: [UInt8]) throws -> JSONValue { try JSONValue.parse(bytes) }

    @Test("alerts survive the spool's JSON form unchanged")
    func alertRoundTrip() throws {
        var alert = sampleAlert(3)
        alert.count = 7
        #expect(try AlertJSON.decode(parse(AlertJSON.bytes(alert))) == alert)
        let noHost = sampleAlert(4, host: nil)
        #expect(try AlertJSON.decode(parse(AlertJSON.bytes(noHost))) == noHost)
        // The spool's direct writer says exactly what the JSON tree says.
        var odd = sampleAlert(5, user: "bob \"q\"\n\u{1}", host: nil)
        odd.risk = 1
        odd.dotProduct = .nan
        odd.reasons = []
        for a in [alert, noHost, odd] {
            var tree: [UInt8] = []
            JSONWriter.append(AlertJSON.encode(a), to: &tree)
            #expect(AlertJSON.bytes(a) == tree)
        }
    }

    @Test("timestamps are RFC 3339 UTC with milliseconds")
    func timestamps() {
        #expect(Clock.rfc3339Milliseconds(0) == "1970-01-01T00:00:00.000Z")
        #expect(Clock.rfc3339Milliseconds(1_763_884_801.25) == "2025-11-23T08:00:01.250Z")
    }

    @Test("webhook: type, timestamp and the alert as data")
    func webhook() throws {
        let sink = WebhookSink(url: "http://127.0.0.1:1/", secret: nil)
        let body = try parse(sink.body(for: sampleAlert()))
        #expect(body["type"]?.stringValue == "ipsight.alert")
        #expect(body["data"]?["id"]?.stringValue == "evt-1-alice-203.0.113.9")
        #expect(body["data"]?["reasons"]?.arrayValue?.count == 2)
    }

    @Test("Slack: one text field, control characters escaped")
    func slack() throws {
        let sink = SlackSink(url: try secretFile("https://hooks.slack.test/x", in: directory))
        var alert = sampleAlert(user: "<!channel>")
        alert.count = 12
        let body = try parse(sink.body(for: alert))
        let text = try #require(body["text"]?.stringValue)
        #expect(body.objectValue?.count == 1)
        #expect(text.contains("&lt;!channel&gt;") && !text.contains("<!channel>"))
        #expect(text.contains("12 similar alerts"))
    }

    @Test("Teams: a message with one Adaptive Card attachment")
    func teams() throws {
        let sink = TeamsSink(url: try secretFile("https://teams.test/x", in: directory))
        let body = try parse(sink.body(for: sampleAlert()))
        #expect(body["type"]?.stringValue == "message")
        let attachment = try #require(body["attachments"]?.arrayValue?.first)
        #expect(attachment["contentType"]?.stringValue == "application/vnd.microsoft.card.adaptive")
        let card = try #require(attachment["content"])
        #expect(card["type"]?.stringValue == "AdaptiveCard")
        #expect(card["version"]?.stringValue == "1.4")
        let facts = card["body"]?.arrayValue?.last?["facts"]?.arrayValue ?? []
        #expect(facts.contains { $0["title"]?.stringValue == "Source IP" && $0["value"]?.stringValue == "203.0.113.9" })
    }

    @Test("PagerDuty: Events v2 trigger keyed by the alert id")
    func pagerDuty() throws {
        let sink = PagerDutySink(routingKey: try secretFile("R0UTINGKEY", in: directory))
        let body = try parse(sink.body(for: sampleAlert()))
        #expect(body["routing_key"]?.stringValue == "R0UTINGKEY")
        #expect(body["event_action"]?.stringValue == "trigger")
        #expect(body["dedup_key"]?.stringValue == "evt-1-alice-203.0.113.9")
        #expect(body["payload"]?["severity"]?.stringValue == "critical")
        #expect(body["payload"]?["source"]?.stringValue == "bastion-1")
        #expect(body["payload"]?["summary"]?.stringValue?.hasPrefix("alice logged in") == true)
        #expect(body["payload"]?["custom_details"]?["ip"]?.stringValue == "203.0.113.9")
    }

    @Test("Splunk HEC: event, time, host, sourcetype")
    func splunk() throws {
        let sink = SplunkSink(url: "https://splunk.test:8088/services/collector/event",
                              token: try secretFile("hec-token", in: directory), index: "security")
        let body = try parse(sink.body(for: sampleAlert()))
        #expect(body["time"]?.numberValue == 1_763_884_801.25)
        #expect(body["host"]?.stringValue == "bastion-1")
        #expect(body["sourcetype"]?.stringValue == "ipsight:alert")
        #expect(body["index"]?.stringValue == "security")
        #expect(body["event"]?["user"]?.stringValue == "alice")
    }

    @Test("ECS: JSON lines appended to a file")
    func ecs() throws {
        let path = directory.appendingPathComponent("alerts.ndjson").path
        let sink = ECSSink(destination: .file(path))
        try sink.deliver(sampleAlert(1))
        try sink.deliver(sampleAlert(2, user: "bob", ip: "2001:db8::7", host: nil))
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let doc = try JSONValue.parse(String(lines[0]))
        #expect(doc["@timestamp"]?.stringValue == "2025-11-23T08:00:01.250Z")
        #expect(doc["event"]?["kind"]?.stringValue == "alert")
        #expect(doc["event"]?["category"] == .array([.string("authentication")]))
        #expect(doc["event"]?["outcome"]?.stringValue == "success")
        #expect(doc["event"]?["risk_score"]?.numberValue.map { abs($0 - 98.7) < 1e-9 } == true)
        #expect(doc["user"]?["name"]?.stringValue == "alice")
        #expect(doc["source"]?["ip"]?.stringValue == "203.0.113.9")
        #expect(doc["host"]?["name"]?.stringValue == "bastion-1")
        #expect(doc["ipsight"]?["reasons"]?.arrayValue?.contains(.object([("name", .string("nearest_known")), ("value", .string("198.51.100.0/24"))])) == true)
        let second = try JSONValue.parse(String(lines[1]))
        #expect(second["source"]?["ip"]?.stringValue == "2001:db8::7")
        #expect(second["host"] == nil)
    }

    @Test("secrets come from files or the environment, never inline")
    func secrets() throws {
        let fromFile = try secretFile("whsec_" + Data([1, 2, 3, 250]).base64EncodedString(), in: directory)
        #expect(fromFile.signingKey == [1, 2, 3, 250])
        #expect(!fromFile.description.contains("whsec"))
        setenv("IPSIGHT_TEST_SECRET_RAW", "plain-key", 1)
        #expect(try Secret("env:IPSIGHT_TEST_SECRET_RAW").signingKey == Array("plain-key".utf8))
        #expect(throws: SecretError.self) { try Secret("hunter2") }
        #expect(throws: SecretError.self) { try Secret("env:IPSIGHT_TEST_SECRET_UNSET_\(UUID().uuidString.prefix(6))") }
        #expect(throws: SecretError.self) { try Secret("file:\(directory.path)/missing") }
    }

    @Test("sinks from config settings, with errors that name the sink")
    func configuration() throws {
        let key = try secretFile("k", in: directory).description
        #expect(try SinkConfiguration.makeSink(name: "oncall", settings: ["type": "pagerduty", "routing_key": key]) is PagerDutySink)
        #expect(try SinkConfiguration.makeSink(name: "siem", settings: ["type": "ecs", "path": "-"]) is ECSSink)
        #expect(try SinkConfiguration.makeSink(name: "hook", settings: ["type": "webhook", "url": "https://x.test/", "secret": key,
                                                                        "timeout": "3"]) is WebhookSink)
        let error = #expect(throws: SinkConfigurationError.self) {
            try SinkConfiguration.makeSink(name: "chat", settings: ["type": "slack", "url": "https://hooks.slack.com/inline"])
        }
        #expect(error?.description.contains("chat") == true)
        #expect(throws: SinkConfigurationError.self) {
            try SinkConfiguration.makeSink(name: "hook", settings: ["type": "webhook", "url": "file:///etc/passwd"])
        }
    }
}
