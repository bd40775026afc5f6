import IPSightCore
import Foundation
import Hummingbird
import HummingbirdTesting
import IPInsights
import IPInsightsFormats
import Observability
import Testing
import TestSupport
@testable import Server

/// `/invocations` with the specification's examples in every content type and accept type.
@Suite struct InvocationTests {
    static let csv = "entity_id_1, 192.168.1.2\nentity_id_2, 10.10.1.2\n"
    static let json = """
        {
            "instances": [
                {"data": {"features": {"values": ["entity_id_1", "192.168.1.2"]}}},
                {"features": ["entity_id_2", "10.10.1.2"]}
            ]
        }
        """
    static let jsonLines = "{\"data\": {\"features\": {\"values\": [\"entity_id_1\", \"192.168.1.2\"]}}},\n{\"features\": [\"entity_id_2\", \"10.10.1.2\"]}\n"
    static let bodies = [("text/csv", csv), ("application/json", json), ("application/jsonlines", jsonLines)]

    func expectedScores(_ model: Model) -> [Double] {
        [Double(model.score(entity: "entity_id_1", ip: IPAddress("192.168.1.2")!)),
         Double(model.score(entity: "entity_id_2", ip: IPAddress("10.10.1.2")!))]
    }

    func close(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }
    }

    @Test(arguments: ["text/csv", "application/json", "application/jsonlines"])
    func everyContentTypeAnswersJSONByDefaultAndOnRequest(contentType: String) async throws {
        let (path, model) = try Support.savedModel(seed: 1)
        defer { unlink(path) }
        let body = Self.bodies.first { $0.0 == contentType }!.1
        let expected = expectedScores(model)
        try await Support.withServer(modelPath: path) { client, _, _ in
            for accept in [nil, "application/json", "*/*"] {
                let response = try await Support.post(client, body, contentType: contentType, accept: accept)
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let document = try Support.json(response.body)
                #expect(Support.keys(document) == ["predictions"])
                let predictions = document["predictions"]?.arrayValue ?? []
                #expect(predictions.map(Support.keys) == [["dot_product"], ["dot_product"]])
                #expect(close(Support.dotProducts(predictions), expected))
            }
        }
    }

    @Test(arguments: ["text/csv", "application/json", "application/jsonlines"])
    func everyContentTypeAnswersJSONLines(contentType: String) async throws {
        let (path, model) = try Support.savedModel(seed: 2)
        defer { unlink(path) }
        let body = Self.bodies.first { $0.0 == contentType }!.1
        try await Support.withServer(modelPath: path) { client, _, _ in
            let response = try await Support.post(client, body, contentType: contentType, accept: "application/jsonlines")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/jsonlines")
            let lines = try Support.jsonLines(response.body)
            #expect(lines.map(Support.keys) == [["dot_product"], ["dot_product"]])
            #expect(close(Support.dotProducts(lines), expectedScores(model)))
        }
    }

    @Test(arguments: ["application/json; verbose=True", "application/jsonlines;verbose=True"])
    func verboseAddsBothEmbeddings(accept: String) async throws {
        let (path, model) = try Support.savedModel(seed: 3)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path) { client, _, _ in
            let response = try await Support.post(client, Self.csv, contentType: "text/csv", accept: accept)
            #expect(response.status == .ok)
            let predictions = accept.hasPrefix("application/jsonlines")
                ? try Support.jsonLines(response.body)
                : try Support.json(response.body)["predictions"]?.arrayValue ?? []
            #expect(predictions.count == 2)
            for (k, p) in predictions.enumerated() {
                #expect(Support.keys(p) == ["dot_product", "entity_embedding", "ip_embedding"])
                let entity = p["entity_embedding"]?.arrayValue?.compactMap(\.numberValue) ?? []
                let ip = p["ip_embedding"]?.arrayValue?.compactMap(\.numberValue) ?? []
                let name = ["entity_id_1", "entity_id_2"][k], address = ["192.168.1.2", "10.10.1.2"][k]
                #expect(close(entity, model.entityEmbedding(name).map(Double.init)))
                #expect(close(ip, model.ipEmbedding(IPAddress(address)!).map(Double.init)))
                let dot = zip(entity, ip).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(close([p["dot_product"]?.numberValue ?? .nan], [dot]))
            }
        }
    }

    @Test func malformedRecordIs400NamingIt() async throws {
        let (path, _) = try Support.savedModel(seed: 4)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path) { client, _, _ in
            let csv = try await Support.post(client, "alice, 192.0.2.1\nbob, 300.1.1.1\n", contentType: "text/csv")
            #expect(csv.status == .badRequest)
            #expect(String(buffer: csv.body).contains("record 2"))
            #expect(String(buffer: csv.body).contains("300.1.1.1"))
            let json = try await Support.post(client, "{\"instances\": [{\"features\": [\"a\", \"192.0.2.1\"]}, {\"features\": [\"b\"]}]}",
                                              contentType: "application/json")
            #expect(json.status == .badRequest)
            #expect(String(buffer: json.body).contains("record 2"))
            let lines = try await Support.post(client, "{\"features\": [\"a\", \"192.0.2.1\"]}\n{\"features\": \n", contentType: "application/jsonlines")
            #expect(lines.status == .badRequest)
            #expect(String(buffer: lines.body).contains("record 2"))
        }
    }

    @Test func unsupportedContentTypeIs415AndAcceptIs406() async throws {
        let (path, _) = try Support.savedModel(seed: 5)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path) { client, _, _ in
            let protobuf = try await Support.post(client, Self.csv, contentType: "application/x-recordio-protobuf")
            #expect(protobuf.status == .unsupportedMediaType)
            let untyped = try await Support.post(client, Self.csv, contentType: nil)
            #expect(untyped.status == .unsupportedMediaType)
            let csvAccept = try await Support.post(client, Self.csv, contentType: "text/csv", accept: "text/csv")
            #expect(csvAccept.status == .notAcceptable)
            let protobufAccept = try await Support.post(client, Self.csv, contentType: "text/csv", accept: "application/x-recordio-protobuf")
            #expect(protobufAccept.status == .notAcceptable)
        }
    }

    @Test func bodyOverMaxPayloadIs413() async throws {
        let (path, model) = try Support.savedModel(seed: 6)
        defer { unlink(path) }
        try await Support.withServer(modelPath: path, configuration: ServerConfiguration(maxPayloadInMB: 1)) { client, _, _ in
            let line = "entity_id_1, 192.168.1.2\n"
            let big = String(repeating: line, count: 1024 * 1024 / line.utf8.count + 1)
            let tooLarge = try await Support.post(client, big, contentType: "text/csv")
            #expect(tooLarge.status == .contentTooLarge)
            // A body just under the limit is scored.
            let fits = String(repeating: line, count: 1024 * 1024 / line.utf8.count)
            let response = try await Support.post(client, fits, contentType: "text/csv", accept: "application/jsonlines")
            #expect(response.status == .ok)
            let first = try Support.jsonLines(response.body).first
            #expect(close(Support.dotProducts(first.map { [$0] } ?? []), [expectedScores(model)[0]]))
        }
    }

    @Test func largeBatchIsScoredInOrder() async throws {
        let (path, model) = try Support.savedModel(seed: 7)
        defer { unlink(path) }
        let pairs = (0..<5000).map { k in ("user_\(k % 97)", "10.\(k % 251).\(k / 251).\(k % 13)") }
        let body = pairs.map { "\($0.0),\($0.1)\n" }.joined()
        #expect(body.utf8.count > ServingRoutes<BasicRequestContext>.inlineBytes)
        let expected = pairs.map { Double(model.score(entity: $0.0, ip: IPAddress($0.1)!)) }
        try await Support.withServer(modelPath: path) { client, _, metrics in
            let response = try await Support.post(client, body, contentType: "text/csv", accept: "application/jsonlines")
            #expect(response.status == .ok)
            #expect(close(Support.dotProducts(try Support.jsonLines(response.body)), expected))
            #expect(Exposition.value("ipsight_pairs_scored_total", in: metrics.text()) == 5000)
        }
    }
}
