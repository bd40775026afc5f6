import Hummingbird
import IPInsights
import IPInsightsFormats
import NIOCore

/// The hosting contract's routes: `/ping`, `/invocations`, `/execution-parameters`, and `/metrics`.
public struct ServingRoutes<Context: RequestContext>: Sendable {
    let store: ModelStore
    let metrics: ServerMetrics
    let configuration: ServerConfiguration

    public init(store: ModelStore, metrics: ServerMetrics, configuration: ServerConfiguration) {
        self.store = store
        self.metrics = metrics
        self.configuration = configuration
    }

    public func add(to router: Router<Context>) {
        // The store is built from a model that loaded, so the server is ready as soon as it listens.
        router.get("/ping") { _, _ in Response(status: .ok) }
        router.post("/invocations") { request, context in try await invocations(request, context: context) }
        router.get("/execution-parameters") { _, _ in executionParameters() }
        router.get("/metrics") { _, _ in
            let text = metrics.render(model: store.current, reloads: store.reloads)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }

    func executionParameters() -> Response {
        let json = "{\"MaxConcurrentTransforms\": \(configuration.maxConcurrentTransforms), \"BatchStrategy\": \"MULTI_RECORD\", \"MaxPayloadInMB\": \(configuration.maxPayloadInMB)}\n"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: json)))
    }

    func invocations(_ request: Request, context: Context) async throws -> Response {
        let limit = configuration.maxPayloadBytes
        // Refuse an announced oversize body before reading any of it.
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw HTTPError(.contentTooLarge, message: "the body is \(length) bytes, more than MaxPayloadInMB (\(configuration.maxPayloadInMB) MB)")
        }
        guard let contentType = request.headers[.contentType] else {
            throw HTTPError(.unsupportedMediaType, message: "missing Content-Type (text/csv, application/json or application/jsonlines)")
        }
        guard let requestFormat = RequestFormat(contentType: contentType) else {
            throw HTTPError(.unsupportedMediaType, message: "unsupported Content-Type '\(contentType)' (text/csv, application/json or application/jsonlines)")
        }
        let accept = request.headers[.accept] ?? "application/json"
        guard let responseFormat = ResponseFormat(accept: accept), !responseFormat.risk else {
            throw HTTPError(.notAcceptable, message: "unsupported Accept '\(accept)' (application/json or application/jsonlines, optionally ;verbose=True)")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw HTTPError(.contentTooLarge, message: "the body is more than MaxPayloadInMB (\(configuration.maxPayloadInMB) MB)")
        }
        // Take the model once, so a reload during this request does not mix two models.
        let model = store.current.model
        let outcome = body.withUnsafeReadableBytes { buffer in
            Result { () throws(InferenceError) in
                try Invocation.respond(to: buffer, request: requestFormat, response: responseFormat, model: model)
            }
        }
        let result: (bytes: [UInt8], pairs: Int)
        switch outcome {
        case .success(let answer): result = answer
        case .failure(let error): throw HTTPError(.badRequest, message: error.description)
        }
        metrics.recordPairs(result.pairs)
        return Response(status: .ok, headers: [.contentType: responseFormat.contentType],
                        body: .init(byteBuffer: ByteBuffer(bytes: result.bytes)))
    }
}
