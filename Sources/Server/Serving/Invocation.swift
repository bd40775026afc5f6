import IPInsights
import IPInsightsFormats

/// Scores one `/invocations` body with a model, in the hosting contract's formats.
public enum Invocation {
    /// The response body and how many pairs it scores.
    public struct Answer: Sendable {
        public var bytes: [UInt8]
        public var pairs: Int
    }

    /// Scores every record of the body; a bad record throws naming it.
    public static func respond(to body: UnsafeRawBufferPointer, request: RequestFormat, response: ResponseFormat,
                               model: Model) throws(InferenceError) -> Answer {
        let records = try InferenceRequest.decode(body, format: request)
        let rows = records.map { Int32(model.entityRow($0.entity)) }
        let ips = records.map(\.ip)
        let n = records.count, d = model.dimension
        var scores = [Float](repeating: 0, count: n)
        var ipEmbeddings: [Float]? = response.verbose ? [Float](repeating: 0, count: n * d) : nil
        // One thread per request: concurrent requests already keep the cores busy.
        let scorer = BatchScorer(model: model, threads: 1)
        rows.withUnsafeBufferPointer { e in
            ips.withUnsafeBufferPointer { i in
                scores.withUnsafeMutableBufferPointer { s in
                    if ipEmbeddings != nil {
                        ipEmbeddings!.withUnsafeMutableBufferPointer { p in
                            scorer.score(entityRows: e, ips: i, into: s, ipEmbeddings: p.baseAddress)
                        }
                    } else {
                        scorer.score(entityRows: e, ips: i, into: s)
                    }
                }
            }
        }
        var entityEmbeddings: [Float]? = nil
        if response.verbose {
            var gathered = [Float]()
            gathered.reserveCapacity(n * d)
            for row in rows {
                gathered.append(contentsOf: UnsafeBufferPointer(start: model.entityVector(row: Int(row)), count: d))
            }
            entityEmbeddings = gathered
        }
        let bytes = InferenceResponse.encode(scores: scores, entityEmbeddings: entityEmbeddings, ipEmbeddings: ipEmbeddings,
                                             dimension: d, format: response)
        return Answer(bytes: bytes, pairs: n)
    }
}
