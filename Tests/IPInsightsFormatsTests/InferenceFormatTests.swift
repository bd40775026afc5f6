import IPSightCore
import Testing
import IPInsights
@testable import IPInsightsFormats

@Suite struct InferenceFormatTests {
    func decode(_ body: String, _ format: RequestFormat) throws(InferenceError) -> [InferenceRecord] {
        var copy = body
        let result = copy.withUTF8 { buffer in
            Result { () throws(InferenceError) -> [InferenceRecord] in
                try InferenceRequest.decode(UnsafeRawBufferPointer(buffer), format: format)
            }
        }
        return try result.get()
    }

    let expected = [InferenceRecord(entity: "entity_id_1", ip: IPAddress("192.168.1.2")!),
                    InferenceRecord(entity: "entity_id_2", ip: IPAddress("10.10.1.2")!)]

    // The request examples of the specification, verbatim.
    @Test func csvExample() throws {
        #expect(try decode("entity_id_1, 192.168.1.2\nentity_id_2, 10.10.1.2\n", .csv) == expected)
    }

    @Test func jsonExampleWithBothInstanceForms() throws {
        let body = """
        {
            "instances": [
                {"data": {"features": {"values": ["entity_id_1", "192.168.1.2"]}}},
                {"features": ["entity_id_2", "10.10.1.2"]}
            ]
        }
        """
        #expect(try decode(body, .json) == expected)
    }

    @Test func jsonLinesExample() throws {
        // The specification's example ends the first line with a comma.
        let body = "{\"data\": {\"features\": {\"values\": [\"entity_id_1\", \"192.168.1.2\"]}}},\n{\"features\": [\"entity_id_2\", \"10.10.1.2\"]}\n"
        #expect(try decode(body, .jsonLines) == expected)
    }

    @Test(arguments: [
        ("entity_id_1, 192.168.1.2\nentity_id_2, 10.10.1.300\n", RequestFormat.csv, 2),
        ("a,1.2.3.4\nonly-one-field\n", .csv, 2),
        ("{\"instances\": [{\"features\": [\"a\", \"1.2.3.4\"]}, {\"features\": [\"a\"]}]}", .json, 2),
        ("{\"instances\": [{\"features\": [\"a\", 5]}]}", .json, 1),
        ("{\"instances\": [{\"values\": [\"a\", \"1.2.3.4\"]}]}", .json, 1),
        ("{\"features\": [\"a\", \"1.2.3.4\"]}\n{\"features\": [\"b\", \"1.2.3.4\"\n", .jsonLines, 2),
    ])
    func badRecordsAreNamed(_ body: String, _ format: RequestFormat, _ record: Int) {
        do {
            _ = try decode(body, format)
            Issue.record("accepted")
        } catch {
            #expect(error.record == record, "\(error)")
        }
    }

    @Test func jsonWithoutInstancesIsRefused() {
        #expect(throws: InferenceError.self) { try decode("{\"predictions\": []}", .json) }
        #expect(throws: InferenceError.self) { try decode("[1, 2", .json) }
    }

    // The response examples: same keys, order and structure.
    @Test func jsonResponse() throws {
        let out = InferenceResponse.encode(scores: [0.0, 2.0], format: ResponseFormat(kind: .json))
        let text = String(decoding: out, as: UTF8.self)
        #expect(text == "{\"predictions\": [{\"dot_product\": 0.0}, {\"dot_product\": 2.0}]}\n")
        let parsed = try JSONValue.parse(text)
        #expect(parsed == .object([("predictions", .array([.object([("dot_product", .number(0))]), .object([("dot_product", .number(2))])]))]))
    }

    @Test func jsonLinesResponse() {
        let out = InferenceResponse.encode(scores: [0.5, -1.25], format: ResponseFormat(kind: .jsonLines))
        #expect(String(decoding: out, as: UTF8.self) == "{\"dot_product\": 0.5}\n{\"dot_product\": -1.25}\n")
    }

    @Test func verboseResponseCarriesBothEmbeddings() throws {
        let out = InferenceResponse.encode(scores: [0.0], entityEmbeddings: [1, 2, 3], ipEmbeddings: [0.5, 0, -1],
                                           dimension: 3, format: ResponseFormat(kind: .json, verbose: true))
        let parsed = try JSONValue.parse(out)
        let prediction = try #require(parsed["predictions"]?.arrayValue?.first)
        #expect(prediction.objectValue?.map(\.0) == ["dot_product", "entity_embedding", "ip_embedding"])
        #expect(prediction["entity_embedding"] == .array([.number(1), .number(2), .number(3)]))
        #expect(prediction["ip_embedding"] == .array([.number(0.5), .number(0), .number(-1)]))
    }

    @Test func acceptHeaders() {
        #expect(ResponseFormat(accept: "application/json") == ResponseFormat(kind: .json))
        #expect(ResponseFormat(accept: "application/json;verbose=True") == ResponseFormat(kind: .json, verbose: true))
        #expect(ResponseFormat(accept: "application/jsonlines; verbose=True") == ResponseFormat(kind: .jsonLines, verbose: true))
        #expect(ResponseFormat(accept: "application/jsonlines; verbose=False") == ResponseFormat(kind: .jsonLines))
        #expect(ResponseFormat(accept: "*/*") == ResponseFormat(kind: .json))
        #expect(ResponseFormat(accept: "text/html, application/jsonlines") == ResponseFormat(kind: .jsonLines))
        #expect(ResponseFormat(accept: "text/csv") == nil)
        #expect(RequestFormat(contentType: "text/csv; charset=utf-8") == .csv)
        #expect(RequestFormat(contentType: "application/x-protobuf") == nil)
    }
}
