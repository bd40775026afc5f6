import IPSightCore
import TestSupport
import Foundation
import Testing
@testable import AlertSinks

/// Each HTTP sink POSTs to the real receiver on 127.0.0.1: headers and bodies as sent.
@Suite("HTTP sinks against the real receiver", .serialized)
final class HTTPSinkTests {
    let directory: URL
    init() throws { directory = try temporaryDirectory() }
    deinit { try? FileManager.default.removeItem(at: directory) }

    @Test("Slack, Teams, PagerDuty and Splunk requests arrive with their headers and bodies")
    func sinksPost() throws {
        let receiver = try WebhookReceiver(directory: directory)
        let url = try secretFile(receiver.url, in: directory, name: "url")
        let sinks: [any AlertSink] = [
            SlackSink(url: url),
            TeamsSink(url: url),
            PagerDutySink(routingKey: try secretFile("pd-key", in: directory, name: "pd"), url: receiver.url),
            SplunkSink(url: receiver.url, token: try secretFile("hec-token", in: directory, name: "hec")),
        ]
        for sink in sinks { try sink.deliver(sampleAlert()) }
        let records = receiver.records()
        try #require(records.count == 4)
        #expect(records.allSatisfy { $0["headers"]?["content-type"]?.stringValue == "application/json" })
        #expect(records[0]["body"]?["text"]?.stringValue?.contains("alice") == true)
        #expect(records[1]["body"]?["attachments"]?.arrayValue?.count == 1)
        #expect(records[2]["body"]?["routing_key"]?.stringValue == "pd-key")
        #expect(records[3]["headers"]?["authorization"]?.stringValue == "Splunk hec-token")
        #expect(records[3]["body"]?["event"]?["id"]?.stringValue == sampleAlert().id)
    }

    @Test("statuses are classified: 429 and 5xx retryable, other 4xx permanent")
    func classification() throws {
        for (status, kind) in [(429, DeliveryError.Kind.retryable), (500, .retryable), (404, .permanent), (401, .permanent)] {
            let receiver = try WebhookReceiver(directory: directory, failFirst: 1, failStatus: status)
            let poster = HTTPPoster(timeoutSeconds: 5, connectTimeoutSeconds: 2)
            let error = #expect(throws: DeliveryError.self) {
                try poster.post(sink: "probe", url: receiver.url, headers: [], body: Array("{}".utf8))
            }
            #expect(error?.kind == kind, "HTTP \(status)")
            #expect(error?.description.contains("HTTP \(status)") == true)
            #expect(try poster.post(sink: "probe", url: receiver.url, headers: [], body: Array("{}".utf8)) == 200)
        }
    }

    @Test("a receiver slower than the timeout is a retryable failure")
    func timeout() throws {
        let receiver = try WebhookReceiver(directory: directory, delayMilliseconds: 2000)
        let poster = HTTPPoster(timeoutSeconds: 0.4, connectTimeoutSeconds: 0.4)
        let error = #expect(throws: DeliveryError.self) {
            try poster.post(sink: "slow", url: receiver.url, headers: [], body: Array("{}".utf8))
        }
        #expect(error?.kind == .retryable)
        #expect(error?.reason.contains("127.0.0.1") == true)
    }

    @Test("a refused connection is retryable and names the sink")
    func refused() {
        let poster = HTTPPoster(timeoutSeconds: 2, connectTimeoutSeconds: 1)
        let error = #expect(throws: DeliveryError.self) {
            try poster.post(sink: "down", url: "http://127.0.0.1:\(freePort())/x", headers: [], body: [])
        }
        #expect(error?.kind == .retryable)
        #expect(error?.description.hasPrefix("down:") == true)
    }

    @Test("control characters in an alert id cannot inject headers")
    func headerInjection() throws {
        let receiver = try WebhookReceiver(directory: directory)
        var alert = sampleAlert()
        alert.id = "evt-1\r\nX-Injected: yes"
        try WebhookSink(url: receiver.url, secret: nil).deliver(alert)
        let headers = try #require(receiver.records().first?["headers"])
        #expect(headers["x-injected"] == nil)
        #expect(headers["webhook-id"]?.stringValue == "evt-1X-Injected: yes")
    }

    @Test("a router from config tables delivers to the sinks they name")
    func routerFromConfig() throws {
        let receiver = try WebhookReceiver(directory: directory, secret: "whsec_" + Data(Array("config key".utf8)).base64EncodedString())
        let secret = try secretFile("whsec_" + Data(Array("config key".utf8)).base64EncodedString(), in: directory)
        let ecsPath = directory.appendingPathComponent("ecs.ndjson").path
        let router = try AlertRouter(
            spoolPath: directory.appendingPathComponent("spool.sqlite").path,
            sinks: ["soc": ["type": "webhook", "url": receiver.url, "secret": secret.description],
                    "siem": ["type": "ecs", "path": ecsPath]],
            options: AlertRouter.Options(fold: .off), logger: .discarding)
        defer { router.shutdown() }
        try router.submit(sampleAlert())
        #expect(waitUntil(seconds: 20) { router.counters.delivered == 2 })
        #expect(receiver.records().first?["signature_ok"] == .bool(true))
        #expect(FileManager.default.fileExists(atPath: ecsPath))
        #expect(throws: SinkConfigurationError.self) {
            _ = try AlertRouter(spoolPath: self.directory.appendingPathComponent("other.sqlite").path,
                                sinks: ["bad": ["type": "carrier-pigeon"]], logger: .discarding)
        }
    }

    @Test("Retry-After in seconds is read from header lines")
    func retryAfter() {
        #expect(HTTPPoster.retryAfter(headerLine: "Retry-After: 30\r\n") == 30)
        #expect(HTTPPoster.retryAfter(headerLine: "retry-after:5") == 5)
        #expect(HTTPPoster.retryAfter(headerLine: "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n") == nil)
        #expect(HTTPPoster.retryAfter(headerLine: "Content-Length: 30\r\n") == nil)
    }

    @Test("URLs in errors keep the host and hide the path (Slack's credential)")
    func redaction() {
        #expect(HTTPPoster.redacted("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com/…")
        #expect(HTTPPoster.redacted("http://127.0.0.1:9") == "http://127.0.0.1:9")
    }
}
