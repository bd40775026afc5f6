import ArgumentParser
import IPInsights
import IPInsightsFormats

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Batch transform: score entity,ip records with a model.",
        discussion: """
        Reads INPUT (or standard input) in the request format of the hosting contract and
        writes predictions in the response format to standard output, one per record, in order.
        Examples:
          ipsight score --model model.ipsight test.csv > scores.jsonl
          ipsight score --model model.ipsight --content-type application/json \\
            --accept 'application/json;verbose=True' request.json
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "text/csv, application/json or application/jsonlines.") var contentType: String = "text/csv"
    @Option(help: "application/json or application/jsonlines, optionally ;verbose=True.") var accept: String = "application/jsonlines"
    @Option(help: "Worker threads.") var threads: Int = 2
    @Argument(help: "Input file (default: standard input).") var input: String?

    func run() throws {
        guard let requestFormat = RequestFormat(contentType: contentType) else {
            throw ValidationError("unsupported content type '\(contentType)' (text/csv, application/json, application/jsonlines)")
        }
        guard let responseFormat = ResponseFormat(accept: accept) else {
            throw ValidationError("unsupported accept type '\(accept)' (application/json or application/jsonlines, optionally ;verbose=True)")
        }
        let loaded = try ModelFile.load(path: model)
        let writer = PredictionWriter(model: loaded, format: responseFormat, threads: threads)
        do {
            switch requestFormat {
            case .csv, .jsonLines:
                try streamLines(format: requestFormat, writer: writer)
            case .json:
                let body = try readAll(input)
                let records = try body.withUnsafeBytes { buffer throws(InferenceError) in
                    try InferenceRequest.decode(buffer, format: .json)
                }
                writer.add(records)
            }
            writer.finish()
        } catch let error as InferenceError {
            FileHandleOut.standardOutput.flush()
            Console.error("ipsight score: \(input ?? "<stdin>"): \(error)")
            throw ExitCode.failure
        }
    }

    /// CSV and JSON Lines are scored as they stream in, so input of any size runs in
    /// bounded memory; a bad record stops the run with its number and line.
    func streamLines(format: RequestFormat, writer: PredictionWriter) throws {
        let reader = try ByteLineReader(path: input, maximumLineLength: 1 << 16)
        var splitter = CSVSplitter()
        defer { splitter.deallocate() }
        var number = 0
        var failure: InferenceError? = nil
        try reader.forEachLine { line in
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
            number += 1
            do {
                if line.truncated { throw InferenceError(record: number, message: "line longer than 64 KiB") }
                if format == .csv {
                    try writer.addCSV(line.bytes, number: number, splitter: &splitter)
                } else {
                    var end = line.bytes.count
                    if end > 0, line.bytes[end - 1] == UInt8(ascii: ",") { end -= 1 }
                    let value = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: line.bytes[0..<end]))
                    writer.add([try InferenceRequest.record(from: value, number: number)])
                }
            } catch let error as InferenceError {
                failure = InferenceError(record: error.record, message: "\(error.message) (line \(line.number))")
                return false
            } catch {
                failure = InferenceError(record: number, message: "invalid JSON at \(error) (line \(line.number))")
                return false
            }
            return true
        }
        if let failure {
            writer.flushPending()
            throw failure
        }
    }
}

func readAll(_ path: String?) throws -> [UInt8] {
    let reader = try ByteLineReader(path: path, maximumLineLength: Int.max / 2)
    var bytes: [UInt8] = []
    try reader.forEachLine { line in
        bytes.append(contentsOf: line.bytes)
        bytes.append(0x0A)
        return true
    }
    return bytes
}

/// Collects records into blocks, scores each block on all threads, and writes the
/// predictions in order.
final class PredictionWriter {
    let model: Model
    let format: ResponseFormat
    let scorer: BatchScorer
    static let block = 1 << 16
    var entityRows: [Int32] = []
    var ips: [IPAddress] = []
    var written = 0
    var out: [UInt8] = []

    init(model: Model, format: ResponseFormat, threads: Int) {
        self.model = model
        self.format = format
        scorer = BatchScorer(model: model, threads: threads)
        entityRows.reserveCapacity(PredictionWriter.block)
        ips.reserveCapacity(PredictionWriter.block)
        if format.kind == .json { FileHandleOut.standardOutput.write(InferenceResponse.jsonOpen) }
    }

    /// The fast path for CSV: the entity is hashed from the line's bytes, never copied.
    func addCSV(_ line: UnsafeRawBufferPointer, number: Int, splitter: inout CSVSplitter) throws(InferenceError) {
        if let problem = splitter.split(line) {
            throw InferenceError(record: number, message: "column \(problem.column): \(problem.message)")
        }
        let fields = splitter.fields
        guard fields.count == 2 else { throw InferenceError(record: number, message: "expected 2 fields (entity, ip), found \(fields.count)") }
        guard !fields[0].isEmpty else { throw InferenceError(record: number, message: "empty entity") }
        guard let ip = IPAddress(bytes: fields[1]) else {
            throw InferenceError(record: number, message: "'\(String(decoding: fields[1].prefix(60), as: UTF8.self))' is not an IPv4 or IPv6 address")
        }
        entityRows.append(Int32(model.entityRow(fields[0])))
        ips.append(ip)
        if ips.count == PredictionWriter.block { flushPending() }
    }

    func add(_ records: [InferenceRecord]) {
        for record in records {
            entityRows.append(Int32(model.entityRow(record.entity)))
            ips.append(record.ip)
            if ips.count == PredictionWriter.block { flushPending() }
        }
    }

    func flushPending() {
        let n = ips.count
        guard n > 0 else { return }
        let d = model.dimension
        var scores = [Float](repeating: 0, count: n)
        let embeddings = format.verbose ? FloatBuffer(count: n * d) : nil
        entityRows.withUnsafeBufferPointer { e in
            ips.withUnsafeBufferPointer { i in
                scores.withUnsafeMutableBufferPointer { s in
                    scorer.score(entityRows: e, ips: i, into: s, ipEmbeddings: embeddings?.pointer)
                }
            }
        }
        out.removeAll(keepingCapacity: true)
        for k in 0..<n {
            if format.kind == .json, written + k > 0 { out.append(contentsOf: InferenceResponse.jsonSeparator) }
            if let embeddings {
                InferenceResponse.appendPrediction(
                    score: scores[k],
                    entityEmbedding: UnsafeBufferPointer(start: model.entityVector(row: Int(entityRows[k])), count: d),
                    ipEmbedding: UnsafeBufferPointer(start: embeddings.pointer + k * d, count: d), to: &out)
            } else {
                InferenceResponse.appendPrediction(score: scores[k], entityEmbedding: nil, ipEmbedding: nil, to: &out)
            }
            if format.kind == .jsonLines { out.append(0x0A) }
        }
        FileHandleOut.standardOutput.write(out)
        written += n
        entityRows.removeAll(keepingCapacity: true)
        ips.removeAll(keepingCapacity: true)
    }

    func finish() {
        flushPending()
        if format.kind == .json { FileHandleOut.standardOutput.write(InferenceResponse.jsonClose) }
        FileHandleOut.standardOutput.flush()
    }
}
