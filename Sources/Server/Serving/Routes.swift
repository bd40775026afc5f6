import Dispatch
import Hummingbird
import IPInsights
import IPInsightsFormats
import NIOCore
import Observability

/// The hosting contract's routes: `/ping`, `/invocations`, `/execution-parameters`, and `/metrics`.
public struct ServingRoutes<Context: RequestContext>: Sendable {
    let store: any ServedModel
    let metrics: ServerMetrics
    let configuration: ServerConfiguration

    /// The paths these routes serve, for `RequestMetricsMiddleware`.
    public static var paths: Set<String> { ["/ping", "/invocations", "/execution-parameters", "/metrics"] }

    public init(store: any ServedModel, metrics: ServerMetrics, configuration: ServerConfiguration) {
        self.store = store
        self.metrics = metrics
        self.configuration = configuration
    }

    /// The contract's routes and, given the process's registry, `/metrics` (a caller
    /// that reports more figures before rendering adds its own instead).
    public func add(to router: Router<Context>, exposition: PrometheusMetrics?) {
        // Ready once there is a model: `serve` loads one before it listens; the
        // agent may still be waiting for its first.
        router.get("/ping") { _, _ in Response(status: store.model == nil ? .serviceUnavailable : .ok) }
        router.post("/invocations") { request, context in try await invocations(request, context: context) }
        router.get("/execution-parameters") { _, _ in executionParameters() }
        if let exposition {
            router.get("/metrics") { _, _ in
                metrics.observe(model: store.serving)
                return ServingRoutes.prometheus(exposition.text())
            }
        }
    }

    public static func prometheus(_ text: String) -> Response {
        Response(status: .ok, headers: [.contentType: PrometheusMetrics.contentType],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Bodies up to this size are scored on the request's own task.
    static var inlineBytes: Int { 64 * 1024 }

    public static func offload<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
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
        guard let model = store.model else {
            throw HTTPError(.serviceUnavailable, message: "no model yet: the agent trains its first once enough logins are stored")
        }
        let score = { @Sendable () -> Result<Invocation.Answer, HTTPError> in
            body.withUnsafeReadableBytes { buffer in
                Result { () throws(InferenceError) in
                    try Invocation.respond(to: buffer, request: requestFormat, response: responseFormat, model: model)
                }.mapError { HTTPError(.badRequest, message: $0.description) }
            }
        }
        // A large batch would hold a cooperative thread (one of as many as cores) for
        // long; score it on a Dispatch worker instead so other requests keep flowing.
        let outcome = body.readableBytes <= Self.inlineBytes ? score() : await Self.offload(score)
        let result = try outcome.get()
        metrics.recordPairs(result.pairs)
        return Response(status: .ok, headers: [.contentType: responseFormat.contentType],
                        body: .init(byteBuffer: ByteBuffer(bytes: result.bytes)))
    }
}
