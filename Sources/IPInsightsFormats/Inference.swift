import IPSightCore
import IPInsights

/// One (entity, address) pair to score.
public struct InferenceRecord: Sendable, Equatable {
    public var entity: String
    public var ip: IPAddress
    public init(entity: String, ip: IPAddress) {
        self.entity = entity
        self.ip = ip
    }
}

/// A request body that cannot be scored, naming the record at fault.
public struct InferenceError: Error, CustomStringConvertible, Equatable {
    /// 1-based record number, when the problem is in one record.
    public var record: Int?
    public var message: String
    public init(record: Int?, message: String) {
        self.record = record
        self.message = message
    }
    public var description: String {
        if let record { return "record \(record): \(message)" }
        return message
    }
}

/// The request content types of the hosting contract.
public enum RequestFormat: String, Sendable, CaseIterable {
    case csv = "text/csv"
    case json = "application/json"
    case jsonLines = "application/jsonlines"

    /// Parses a Content-Type header value (parameters such as charset are ignored).
    public init?(contentType: String) {
        let media = contentType.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingBlanks().lowercased() } ?? ""
        switch media {
        case "text/csv": self = .csv
        case "application/json": self = .json
        case "application/jsonlines", "application/jsonl", "application/x-jsonlines": self = .jsonLines
        default: return nil
        }
    }
}

/// The response types: JSON or JSON Lines, with `verbose=True` adding the embeddings.
public struct ResponseFormat: Sendable, Equatable {
    public enum Kind: String, Sendable { case json = "application/json", jsonLines = "application/jsonlines" }
    public var kind: Kind
    public var verbose: Bool
    /// `risk=True` (an ipsight extension): add the calibrated risk and its reasons.
    public var risk: Bool

    public init(kind: Kind, verbose: Bool = false, risk: Bool = false) {
        self.kind = kind
        self.verbose = verbose
        self.risk = risk
    }

    /// Parses an Accept header value such as `application/jsonlines; verbose=True`.
    /// `*/*` or an empty value means `application/json`; nil means not supported.
    public init?(accept: String) {
        var kind: Kind? = nil
        var verbose = false
        var risk = false
        // An Accept header may list several types; take the first we serve.
        for alternative in accept.split(separator: ",") {
            let parts = alternative.split(separator: ";").map { String($0).trimmingBlanks() }
            let media = parts.first?.lowercased() ?? ""
            let candidate: Kind?
            switch media {
            case "application/json", "*/*", "application/*", "": candidate = .json
            case "application/jsonlines", "application/jsonl", "application/x-jsonlines": candidate = .jsonLines
            default: candidate = nil
            }
            guard let candidate else { continue }
            kind = candidate
            for parameter in parts.dropFirst() {
                let kv = parameter.split(separator: "=", maxSplits: 1).map { String($0).trimmingBlanks() }
                let on = kv.count == 2 && ["true", "1", "yes"].contains(kv[1].lowercased().trimmingCharacters(in: "\"'"))
                if kv.count == 2, kv[0].lowercased() == "verbose" { verbose = on }
                if kv.count == 2, kv[0].lowercased() == "risk" { risk = on }
            }
            break
        }
        if accept.trimmingBlanks().isEmpty { kind = .json }
        guard let kind else { return nil }
        self.kind = kind
        self.verbose = verbose
        self.risk = risk
    }

    public var contentType: String { kind.rawValue }
}

public enum InferenceRequest {
    /// Decodes a whole request body into records.
    public static func decode(_ body: UnsafeRawBufferPointer, format: RequestFormat) throws(InferenceError) -> [InferenceRecord] {
        switch format {
        case .csv: return try decodeCSV(body)
        case .json:
            let document: JSONValue
            do { document = try JSONValue.parse(body) } catch {
                throw InferenceError(record: nil, message: "invalid JSON at \(error)")
            }
            guard let instances = document["instances"]?.arrayValue else {
                throw InferenceError(record: nil, message: "expected an object with an \"instances\" array")
            }
            var records: [InferenceRecord] = []
            records.reserveCapacity(instances.count)
            for (k, instance) in instances.enumerated() {
                records.append(try record(from: instance, number: k + 1))
            }
            return records
        case .jsonLines:
            var records: [InferenceRecord] = []
            var number = 0
            try forEachLine(body) { (line: UnsafeRawBufferPointer) throws(InferenceError) in
                var end = line.count
                while end > 0, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
                // The specification's own example ends its lines with a comma; accept it.
                if end > 0, line[end - 1] == UInt8(ascii: ",") { end -= 1 }
                let trimmed = UnsafeRawBufferPointer(rebasing: line[0..<end])
                if trimmed.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
                number += 1
                let value: JSONValue
                do { value = try JSONValue.parse(trimmed) } catch {
                    throw InferenceError(record: number, message: "invalid JSON at \(error)")
                }
                records.append(try record(from: value, number: number))
            }
            return records
        }
    }

    static func decodeCSV(_ body: UnsafeRawBufferPointer) throws(InferenceError) -> [InferenceRecord] {
        var records: [InferenceRecord] = []
        var splitter = CSVSplitter()
        defer { splitter.deallocate() }
        var number = 0
        try forEachLine(body) { (line: UnsafeRawBufferPointer) throws(InferenceError) in
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
            number += 1
            records.append(try csvRecord(line, number: number, splitter: &splitter))
        }
        return records
    }

    /// One CSV line `entity, ip` as a record.
    public static func csvRecord(_ line: UnsafeRawBufferPointer, number: Int, splitter: inout CSVSplitter) throws(InferenceError) -> InferenceRecord {
        if let problem = splitter.split(line) {
            throw InferenceError(record: number, message: "column \(problem.column): \(problem.message)")
        }
        let fields = splitter.fields
        guard fields.count == 2 else {
            throw InferenceError(record: number, message: "expected 2 fields (entity, ip), found \(fields.count)")
        }
        guard !fields[0].isEmpty else { throw InferenceError(record: number, message: "empty entity") }
        guard let ip = IPAddress(bytes: fields[1]) else {
            throw InferenceError(record: number, message: "'\(String(decoding: fields[1].prefix(60), as: UTF8.self))' is not an IPv4 or IPv6 address")
        }
        return InferenceRecord(entity: String(decoding: fields[0], as: UTF8.self), ip: ip)
    }

    /// Either instance form: `{"features": [entity, ip]}` or
    /// `{"data": {"features": {"values": [entity, ip]}}}`.
    public static func record(from instance: JSONValue, number: Int) throws(InferenceError) -> InferenceRecord {
        let values: [JSONValue]
        if let features = instance["features"]?.arrayValue {
            values = features
        } else if let nested = instance["data"]?["features"]?["values"]?.arrayValue {
            values = nested
        } else {
            throw InferenceError(record: number, message: "expected {\"features\": [entity, ip]} or {\"data\": {\"features\": {\"values\": [entity, ip]}}}")
        }
        guard values.count == 2 else {
            throw InferenceError(record: number, message: "expected 2 values (entity, ip), found \(values.count)")
        }
        let entity: String
        switch values[0] {
        case .string(let s): entity = s
        case .number(let n) where n == n.rounded() && abs(n) < 1e15: entity = String(Int64(n))
        default: throw InferenceError(record: number, message: "the entity must be a string, found \(values[0].kindName)")
        }
        guard !entity.isEmpty else { throw InferenceError(record: number, message: "empty entity") }
        guard let text = values[1].stringValue else {
            throw InferenceError(record: number, message: "the address must be a string, found \(values[1].kindName)")
        }
        guard let ip = IPAddress(text) else {
            throw InferenceError(record: number, message: "'\(text.prefix(60))' is not an IPv4 or IPv6 address")
        }
        return InferenceRecord(entity: entity, ip: ip)
    }

    static func forEachLine(_ body: UnsafeRawBufferPointer, _ handle: (UnsafeRawBufferPointer) throws(InferenceError) -> Void) throws(InferenceError) {
        var start = 0
        let n = body.count
        while start < n {
            var end = start
            while end < n, body[end] != 0x0A { end += 1 }
            var lineEnd = end
            if lineEnd > start, body[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            try handle(UnsafeRawBufferPointer(rebasing: body[start..<lineEnd]))
            start = end + 1
        }
    }
}

public enum InferenceResponse {
    /// Appends one prediction object: `{"dot_product": s}` and, verbose, the
    /// embeddings; `extra` is more fields (`, "risk": …`), written before the close.
    public static func appendPrediction(score: Float, entityEmbedding: UnsafeBufferPointer<Float>?,
                                        ipEmbedding: UnsafeBufferPointer<Float>?,
                                        extra: [UInt8]? = nil, to out: inout [UInt8]) {
        out.append(contentsOf: dotProductKey)
        JSONWriter.appendNumber(score, to: &out)
        if let entityEmbedding, let ipEmbedding {
            out.append(contentsOf: entityKey)
            appendVector(entityEmbedding, to: &out)
            out.append(contentsOf: ipKey)
            appendVector(ipEmbedding, to: &out)
        }
        if let extra { out.append(contentsOf: extra) }
        out.append(UInt8(ascii: "}"))
    }

    static let dotProductKey = Array("{\"dot_product\": ".utf8)
    static let entityKey = Array(", \"entity_embedding\": ".utf8)
    static let ipKey = Array(", \"ip_embedding\": ".utf8)
    public static let jsonOpen = Array("{\"predictions\": [".utf8)
    public static let jsonClose = Array("]}\n".utf8)
    public static let jsonSeparator = Array(", ".utf8)

    public static func appendVector(_ v: UnsafeBufferPointer<Float>, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (k, x) in v.enumerated() {
            if k > 0 { out.append(contentsOf: [0x2C, 0x20]) }
            JSONWriter.appendNumber(x, to: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// A whole response for `scores` (and, verbose, the n × d embeddings).
    public static func encode(scores: [Float], entityEmbeddings: [Float]? = nil, ipEmbeddings: [Float]? = nil,
                              dimension: Int = 0, format: ResponseFormat) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(scores.count * (format.verbose ? 20 * dimension : 24) + 32)
        if format.kind == .json { out.append(contentsOf: jsonOpen) }
        for (i, s) in scores.enumerated() {
            if i > 0, format.kind == .json { out.append(contentsOf: jsonSeparator) }
            if format.verbose, let entityEmbeddings, let ipEmbeddings {
                entityEmbeddings.withUnsafeBufferPointer { e in
                    ipEmbeddings.withUnsafeBufferPointer { p in
                        appendPrediction(score: s, entityEmbedding: UnsafeBufferPointer(rebasing: e[(i * dimension)..<((i + 1) * dimension)]),
                                         ipEmbedding: UnsafeBufferPointer(rebasing: p[(i * dimension)..<((i + 1) * dimension)]), to: &out)
                    }
                }
            } else {
                appendPrediction(score: s, entityEmbedding: nil, ipEmbedding: nil, to: &out)
            }
            if format.kind == .jsonLines { out.append(0x0A) }
        }
        if format.kind == .json { out.append(contentsOf: jsonClose) }
        return out
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
