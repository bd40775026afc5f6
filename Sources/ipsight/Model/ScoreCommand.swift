import Detection
import IPSightCore
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
          ipsight score --model model.ipsight --history train.csv --calibration validation.csv \\
            --accept 'application/jsonlines;risk=True' logins.csv
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "text/csv, application/json or application/jsonlines.") var contentType: String = "text/csv"
    @Option(help: "application/json or application/jsonlines, optionally ;verbose=True.") var accept: String = "application/jsonlines"
    @Option(help: "Worker threads.") var threads: Int = 2
    @OptionGroup var risk: RiskOptions
    @Argument(help: "Input file (default: standard input).") var input: String?

    func run() throws {
        guard let requestFormat = RequestFormat(contentType: contentType) else {
            throw ValidationError("unsupported content type '\(contentType)' (text/csv, application/json, application/jsonlines)")
        }
        guard let responseFormat = ResponseFormat(accept: accept) else {
            throw ValidationError("unsupported accept type '\(accept)' (application/json or application/jsonlines, optionally ;verbose=True)")
        }
        if responseFormat.risk && risk.history == nil {
            throw ValidationError("risk=True needs --history (the entities' login history)")
        }
        let loaded = try ModelFile.load(path: model)
        let assessor = responseFormat.risk ? try risk.assessor(model: loaded, threads: threads) : nil
        let writer = PredictionWriter(model: loaded, format: responseFormat, threads: threads, assessor: assessor)
        do {
            switch requestFormat {
            case .csv, .jsonLines:
                try streamLines(format: requestFormat, writer: writer)
            case .json:
                let body = try readAll(input)
                let records = try body.withUnsafeBytes { buffer throws(InferenceError) in
                    try InferenceRequest.decode(buffer, format: .json)
                }
                try writer.add(records)
            }
            try writer.finish()
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
        var number = 0
        var failure: InferenceError? = nil
        try reader.forEachLine { line in
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
            number += 1
            do {
                if line.truncated { throw InferenceError(record: number, message: "line longer than 64 KiB") }
                if format == .csv {
                    try writer.addCSV(line.bytes, lineNumber: line.number)
                } else {
                    var end = line.bytes.count
                    if end > 0, line.bytes[end - 1] == UInt8(ascii: ",") { end -= 1 }
                    let value = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: line.bytes[0..<end]))
                    try writer.add([try InferenceRequest.record(from: value, number: number)])
                }
            } catch let error as InferenceError {
                failure = error.message.hasSuffix(")") ? error : InferenceError(record: error.record, message: "\(error.message) (line \(line.number))")
                return false
            } catch {
                failure = InferenceError(record: number, message: "invalid JSON at \(error) (line \(line.number))")
                return false
            }
            return true
        }
        if let failure {
            try writer.flushPending()
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

/// Collects records into blocks and handles each block on all threads: every thread
/// parses, scores and formats its own contiguous share of the records, and the
/// shares are written in order. A bad record stops the output just before it.
final class PredictionWriter {
    let model: Model
    let format: ResponseFormat
    let threads: Int
    let output: FileHandleOut
    let assessor: RiskAssessor?
    static let block = 1 << 16

    // Pending CSV lines, copied out of the reader's buffer.
    var lineBytes: [UInt8] = []
    var lineEnds: [Int] = []
    var lineNumbers: [Int] = []
    var firstRecord = 1
    // Pending parsed records (JSON input).
    var records: [InferenceRecord] = []
    var written = 0
    var outputs: [[UInt8]]

    init(model: Model, format: ResponseFormat, threads: Int, output: FileHandleOut = .standardOutput,
         assessor: RiskAssessor? = nil) {
        self.assessor = assessor
        self.model = model
        self.format = format
        self.threads = max(1, threads)
        self.output = output
        outputs = [[UInt8]](repeating: [], count: max(1, threads))
        lineBytes.reserveCapacity(PredictionWriter.block * 32)
        if format.kind == .json { output.write(InferenceResponse.jsonOpen) }
    }

    /// Queues one CSV line (`entity, ip`); `record` is its 1-based record number.
    func addCSV(_ line: UnsafeRawBufferPointer, lineNumber: Int) throws(InferenceError) {
        lineBytes.append(contentsOf: line)
        lineEnds.append(lineBytes.count)
        lineNumbers.append(lineNumber)
        if lineEnds.count == PredictionWriter.block { try flushPending() }
    }

    func add(_ more: [InferenceRecord]) throws(InferenceError) {
        for record in more {
            records.append(record)
            if records.count == PredictionWriter.block { try flushPending() }
        }
    }

    func flushPending() throws(InferenceError) {
        let csv = !lineEnds.isEmpty
        let n = csv ? lineEnds.count : records.count
        guard n > 0 else { return }
        let parts = min(threads, max(1, n / 1024))
        var failures = [InferenceError?](repeating: nil, count: parts)
        var ends = [Int](repeating: 0, count: parts)
        lineBytes.withUnsafeBytes { bytes in
            lineEnds.withUnsafeBufferPointer { lineEnds in
                Parallel.run(parts) { c in
                    let lo = n * c / parts, hi = n * (c + 1) / parts
                    var rows = [Int32](), ips = [IPAddress](), hashes = [UInt64]()
                    rows.reserveCapacity(hi - lo)
                    ips.reserveCapacity(hi - lo)
                    var end = hi
                    if csv {
                        var splitter = CSVSplitter()
                        defer { splitter.deallocate() }
                        lines: for k in lo..<hi {
                            let start = k == 0 ? 0 : lineEnds[k - 1]
                            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<lineEnds[k]])
                            let record = firstRecord + k
                            switch Result(catching: { () throws(InferenceError) in try parseCSV(line, record: record, splitter: &splitter) }) {
                            case .success(let (hash, ip)):
                                hashes.append(hash)
                                rows.append(Int32(hash % UInt64(model.hyperparameters.numEntityVectors)))
                                ips.append(ip)
                            case .failure(let error):
                                failures[c] = InferenceError(record: error.record, message: "\(error.message) (line \(lineNumbers[k]))")
                                end = k
                                break lines
                            }
                        }
                    } else {
                        for k in lo..<hi {
                            let hash = StableHash.xxh64(records[k].entity)
                            hashes.append(hash)
                            rows.append(Int32(hash % UInt64(model.hyperparameters.numEntityVectors)))
                            ips.append(records[k].ip)
                        }
                    }
                    ends[c] = end
                    outputs[c] = format(rows: rows, hashes: hashes, ips: ips, firstIndex: written + lo)
                }
            }
        }
        for c in 0..<parts {
            output.write(outputs[c])
            if let failure = failures[c] {
                written += ends[c]
                throw failure
            }
        }
        written += n
        firstRecord += n
        lineBytes.removeAll(keepingCapacity: true)
        lineEnds.removeAll(keepingCapacity: true)
        lineNumbers.removeAll(keepingCapacity: true)
        records.removeAll(keepingCapacity: true)
    }

    /// The entity's stable hash and the address of one CSV line.
    func parseCSV(_ line: UnsafeRawBufferPointer, record: Int, splitter: inout CSVSplitter) throws(InferenceError) -> (UInt64, IPAddress) {
        if let problem = splitter.split(line) {
            throw InferenceError(record: record, message: "column \(problem.column): \(problem.message)")
        }
        let fields = splitter.fields
        guard fields.count == 2 else { throw InferenceError(record: record, message: "expected 2 fields (entity, ip), found \(fields.count)") }
        guard !fields[0].isEmpty else { throw InferenceError(record: record, message: "empty entity") }
        guard let ip = IPAddress(bytes: fields[1]) else {
            throw InferenceError(record: record, message: "'\(String(decoding: fields[1].prefix(60), as: UTF8.self))' is not an IPv4 or IPv6 address")
        }
        return (StableHash.xxh64(fields[0]), ip)
    }

    /// Scores one share of a block on the calling thread and formats its predictions.
    func format(rows: [Int32], hashes: [UInt64], ips: [IPAddress], firstIndex: Int) -> [UInt8] {
        let n = ips.count
        let d = model.dimension
        var out: [UInt8] = []
        guard n > 0 else { return out }
        out.reserveCapacity(n * (format.verbose ? 24 * d : 24))
        var scores = [Float](repeating: 0, count: n)
        let embeddings = format.verbose ? FloatBuffer(count: n * d) : nil
        let scorer = BatchScorer(model: model, threads: 1)
        rows.withUnsafeBufferPointer { e in
            ips.withUnsafeBufferPointer { i in
                scores.withUnsafeMutableBufferPointer { s in
                    scorer.score(entityRows: e, ips: i, into: s, ipEmbeddings: embeddings?.pointer)
                }
            }
        }
        for k in 0..<n {
            if format.kind == .json, firstIndex + k > 0 { out.append(contentsOf: InferenceResponse.jsonSeparator) }
            let assessment = assessor?.assess(entityHash: hashes[k], ip: ips[k], dotProduct: scores[k])
            var riskFields: [UInt8]?
            if let assessment { riskFields = []; assessment.appendJSON(to: &riskFields!) }
            if let embeddings {
                InferenceResponse.appendPrediction(
                    score: scores[k],
                    entityEmbedding: UnsafeBufferPointer(start: model.entityVector(row: Int(rows[k])), count: d),
                    ipEmbedding: UnsafeBufferPointer(start: embeddings.pointer + k * d, count: d), extra: riskFields, to: &out)
            } else {
                InferenceResponse.appendPrediction(score: scores[k], entityEmbedding: nil, ipEmbedding: nil, extra: riskFields, to: &out)
            }
            if format.kind == .jsonLines { out.append(0x0A) }
        }
        return out
    }

    func finish() throws(InferenceError) {
        try flushPending()
        if format.kind == .json { output.write(InferenceResponse.jsonClose) }
        output.flush()
    }
}
