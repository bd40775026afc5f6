import Foundation
import Hummingbird
import HummingbirdTesting
import IPInsights
import IPInsightsFormats
import Observability
import Testing
import TestSupport
@testable import Server

/// `/ping`, `/execution-parameters`, `/metrics` and the bearer token.
@Suite struct ContractTests {
    @Test func pingIs200WithAnEmptyBody() async throws {
        let (path, _) = try Support.savedModel(seed: 10)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path) { client, _, _ in
            let response = try await client.execute(uri: "/ping", method: .get)
            #expect(response.status == .ok)
            #expect(response.body.readableBytes == 0)
        }
    }

    @Test func executionParametersHasTheThreeKeys() async throws {
        let (path, _) = try Support.savedModel(seed: 11)
        defer { unlink(path) }
        let configuration = ServerConfiguration(maxPayloadInMB: 4, maxConcurrentTransforms: 3)
        try await Support.withServer(modelPath: path, configuration: configuration) { client, _, _ in
            let response = try await client.execute(uri: "/execution-parameters", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            let document = try Support.json(response.body)
            #expect(Support.keys(document) == ["MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"])
            #expect(document["MaxConcurrentTransforms"]?.numberValue == 3)
            #expect(document["BatchStrategy"]?.stringValue == "MULTI_RECORD")
            #expect(document["MaxPayloadInMB"]?.numberValue == 4)
        }
    }

    @Test func maxPayloadComesFromTheEnvironment() throws {
        #expect(try ServerConfiguration.maxPayloadInMB(environment: [:]) == 6)
        #expect(try ServerConfiguration.maxPayloadInMB(environment: ["SAGEMAKER_MAX_PAYLOAD_IN_MB": "20"]) == 20)
        #expect(throws: ServerConfigurationError.self) {
            try ServerConfiguration.maxPayloadInMB(environment: ["SAGEMAKER_MAX_PAYLOAD_IN_MB": "six"])
        }
        #expect(throws: ServerConfigurationError.self) {
            try ServerConfiguration.maxPayloadInMB(environment: ["SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"])
        }
    }

    @Test func loopbackHosts() {
        #expect(ServerConfiguration.isLoopback("127.0.0.1"))
        #expect(ServerConfiguration.isLoopback("localhost"))
        #expect(ServerConfiguration.isLoopback("::1"))
        #expect(!ServerConfiguration.isLoopback("0.0.0.0"))
        #expect(!ServerConfiguration.isLoopback("192.0.2.7"))
    }

    @Test func metricsCountRequestsPairsAndTheModel() async throws {
        let (path, _) = try Support.savedModel(seed: 12)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path) { client, _, metrics in
            _ = try await client.execute(uri: "/ping", method: .get)
            _ = try await Support.post(client, InvocationTests.csv, contentType: "text/csv")
            _ = try await Support.post(client, InvocationTests.csv, contentType: "text/csv")
            _ = try await Support.post(client, InvocationTests.csv, contentType: "text/plain")
            _ = try await Support.post(client, "a, not-an-ip\n", contentType: "text/csv")
            _ = try await client.execute(uri: "/wp-login.php", method: .get)
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(buffer: response.body)
            #expect(text.contains("# HELP ipsight_http_requests_total HTTP requests answered, by route and status.\n"))
            #expect(text.contains("# TYPE ipsight_http_requests_total counter\n"))
            #expect(text.contains("ipsight_http_requests_total{route=\"/ping\",status=\"200\"} 1\n"))
            #expect(text.contains("ipsight_http_requests_total{route=\"/invocations\",status=\"200\"} 2\n"))
            #expect(text.contains("ipsight_http_requests_total{route=\"/invocations\",status=\"415\"} 1\n"))
            #expect(text.contains("ipsight_http_requests_total{route=\"/invocations\",status=\"400\"} 1\n"))
            #expect(text.contains("ipsight_http_requests_total{route=\"other\",status=\"404\"} 1\n"))
            #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/invocations\",le=\"+Inf\"} 4\n"))
            #expect(text.contains("ipsight_http_request_duration_seconds_count{route=\"/invocations\"} 4\n"))
            #expect(text.contains("ipsight_pairs_scored_total 4\n"))
            #expect(!text.contains("wp-login"))
            #expect(text.contains("# TYPE ipsight_model_age_seconds gauge\nipsight_model_age_seconds "))
            #expect(text.contains("# TYPE ipsight_model_load_seconds gauge\nipsight_model_load_seconds "))
            // The counters keep moving.
            _ = try await Support.post(client, InvocationTests.csv, contentType: "text/csv")
            let again = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(again.contains("ipsight_http_requests_total{route=\"/invocations\",status=\"200\"} 3\n"))
            #expect(again.contains("ipsight_http_requests_total{route=\"/metrics\",status=\"200\"} 1\n"))
            #expect(again.contains("ipsight_pairs_scored_total 6\n"))
            #expect(Exposition.value("ipsight_pairs_scored_total", in: metrics.text()) == 6)
        }
    }

    @Test func latencyBucketsAreCumulative() {
        let exposition = PrometheusMetrics(help: ServerMetrics.help, timerBuckets: ServerMetrics.timerBuckets)
        let metrics = ServerMetrics(factory: exposition.factory)
        metrics.recordRequest(route: "/ping", status: 200, seconds: 0.0001)
        metrics.recordRequest(route: "/ping", status: 200, seconds: 0.03)
        metrics.recordRequest(route: "/ping", status: 200, seconds: 60)
        metrics.recordReload(loaded: false)
        let model = LoadedModel(model: try! Support.model(seed: 1), fileModified: 0, loadedAt: 0, loadSeconds: 0.5)
        metrics.observe(model: model, now: 100)
        let text = exposition.text()
        #expect(text.contains("# TYPE ipsight_http_request_duration_seconds histogram\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/ping\",le=\"0.0005\"} 1\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/ping\",le=\"0.025\"} 1\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/ping\",le=\"0.05\"} 2\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/ping\",le=\"10.0\"} 2\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_bucket{route=\"/ping\",le=\"+Inf\"} 3\n"))
        #expect(text.contains("ipsight_http_request_duration_seconds_count{route=\"/ping\"} 3\n"))
        #expect(Exposition.value("ipsight_model_age_seconds", in: text) == 100)
        #expect(Exposition.value("ipsight_model_load_seconds", in: text) == 0.5)
        #expect(Exposition.value(#"ipsight_model_reloads_total{result="refused"}"#, in: text) == 1)
        #expect(Exposition.value(#"ipsight_model_reloads_total{result="loaded"}"#, in: text) == 0)
    }

    @Test func bearerTokenGuardsEveryRouteButPing() async throws {
        let (path, _) = try Support.savedModel(seed: 13)
        defer { unlink(path) }
        let tokenPath = Support.temporaryPath("token")
        defer { unlink(tokenPath) }
        try "s3cret-token\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let token = try ServerConfiguration.readToken(path: tokenPath)
        #expect(token == "s3cret-token")
        let configuration = ServerConfiguration(token: token)
        try await Support.withServer(modelPath: path, configuration: configuration) { client, _, _ in
            let ping = try await client.execute(uri: "/ping", method: .get)
            #expect(ping.status == .ok)
            for route in ["/execution-parameters", "/metrics"] {
                let none = try await client.execute(uri: route, method: .get)
                #expect(none.status == .unauthorized)
                #expect(none.headers[.wwwAuthenticate] == "Bearer")
                let wrong = try await client.execute(uri: route, method: .get, headers: [.authorization: "Bearer wrong-token!"])
                #expect(wrong.status == .unauthorized)
                let right = try await client.execute(uri: route, method: .get, headers: [.authorization: "Bearer s3cret-token"])
                #expect(right.status == .ok)
            }
            let anonymous = try await Support.post(client, InvocationTests.csv, contentType: "text/csv")
            #expect(anonymous.status == .unauthorized)
            let allowed = try await Support.post(client, InvocationTests.csv, contentType: "text/csv",
                                                 headers: [.authorization: "Bearer s3cret-token"])
            #expect(allowed.status == .ok)
        }
    }

    @Test func emptyTokenFileIsRefused() throws {
        let tokenPath = Support.temporaryPath("empty-token")
        defer { unlink(tokenPath) }
        try "\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        #expect(throws: ServerConfigurationError.self) { try ServerConfiguration.readToken(path: tokenPath) }
    }
}
