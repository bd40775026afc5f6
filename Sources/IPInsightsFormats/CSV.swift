import IPSightCore
import IPInsights

/// Splits CSV records: comma separated, fields optionally in double quotes (a quote
/// inside written twice), spaces and tabs around a field ignored, as in the
/// specification's `entity_id_1, 192.168.1.2`. Fields point into the line, or into
/// the splitter's own storage when a quoted field had to be unescaped; they stay
/// valid until the next call.
public struct CSVSplitter {
    public private(set) var fields: [UnsafeRawBufferPointer] = []
    private var storage: UnsafeMutableRawBufferPointer

    public init() {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
    }

    /// Frees the unescaping storage; the splitter must not be used afterwards.
    public func deallocate() { storage.deallocate() }

    /// Splits `line`; on a malformed quote returns the 1-based column of the problem.
    public mutating func split(_ line: UnsafeRawBufferPointer) -> CSVProblem? {
        fields.removeAll(keepingCapacity: true)
        if storage.count < line.count {
            storage.deallocate()
            storage = UnsafeMutableRawBufferPointer.allocate(byteCount: line.count * 2, alignment: 8)
        }
        var used = 0
        var i = 0
        let n = line.count
        while true {
            while i < n, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
            if i < n, line[i] == 0x22 {
                // Quoted field.
                let open = i
                i += 1
                let start = used
                var closed = false
                while i < n {
                    if line[i] == 0x22 {
                        if i + 1 < n, line[i + 1] == 0x22 { storage[used] = 0x22; used += 1; i += 2; continue }
                        closed = true
                        i += 1
                        break
                    }
                    storage[used] = line[i]; used += 1; i += 1
                }
                if !closed { return CSVProblem(column: open + 1, message: "unterminated quoted field") }
                while i < n, line[i] == 0x20 || line[i] == 0x09 { i += 1 }
                if i < n, line[i] != 0x2C { return CSVProblem(column: i + 1, message: "text after a closing quote") }
                fields.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[start..<used]))
            } else {
                let start = i
                while i < n, line[i] != 0x2C {
                    if line[i] == 0x22 { return CSVProblem(column: i + 1, message: "quote inside an unquoted field") }
                    i += 1
                }
                var end = i
                while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
                fields.append(UnsafeRawBufferPointer(rebasing: line[start..<end]))
            }
            if i >= n { return nil }
            i += 1   // the comma
        }
    }
}

public struct CSVProblem: Error, Equatable {
    public var column: Int
    public var message: String
}

/// A row that could not be used, with its line number.
public struct RowProblem: Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// What reading a data file found, for the log and for refusing mostly-bad files.
public struct ReadReport: Sendable {
    public var path: String
    public var rows = 0
    public var badRows = 0
    /// The first problems (at most `keep`), each with its line number.
    public var problems: [RowProblem] = []
    static let keep = 20

    mutating func bad(_ line: Int, _ message: String) {
        badRows += 1
        if problems.count < ReadReport.keep { problems.append(RowProblem(line: line, message: message)) }
    }

    public var badShare: Double { rows == 0 ? 0 : Double(badRows) / Double(rows) }
}

/// Labelled pairs for evaluation (`entity,ip,label` with label 0 normal, 1 anomalous).
public struct LabelledPairs: Sendable {
    public var pairs = TrainingPairs()
    public var labels: [Bool]? = nil
}

public enum PairFile {
    /// Reads `entity,ip` rows (with `labelled`, `entity,ip,label`) from a CSV file,
    /// plain or gzip. Malformed rows are counted and reported by line; if more than
    /// `maximumBadShare` of the rows are bad the file is refused.
    public static func read(path: String?, labelled: Bool = false, labelOptional: Bool = false,
                            maximumBadShare: Double = 0.01) throws -> (LabelledPairs, ReadReport) {
        let reader = try ByteLineReader(path: path, maximumLineLength: 64 * 1024)
        var report = ReadReport(path: reader.path)
        var result = LabelledPairs()
        var labels: [Bool] = []
        var splitter = CSVSplitter()
        defer { splitter.deallocate() }
        var sawLabel: Bool? = nil
        try reader.forEachLine { line in
            if line.bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
            report.rows += 1
            if line.truncated { report.bad(line.number, "line longer than 64 KiB"); return true }
            if let problem = splitter.split(line.bytes) {
                report.bad(line.number, "column \(problem.column): \(problem.message)")
                return true
            }
            let fields = splitter.fields
            let expected = labelled ? (labelOptional ? (sawLabel == true ? 3 : sawLabel == false ? 2 : nil) : 3) : 2
            if let expected, fields.count != expected {
                report.bad(line.number, "expected \(expected) fields, found \(fields.count)")
                return true
            }
            if expected == nil, fields.count != 2 && fields.count != 3 {
                report.bad(line.number, "expected 2 or 3 fields, found \(fields.count)")
                return true
            }
            guard !fields[0].isEmpty else { report.bad(line.number, "empty entity"); return true }
            guard let ip = IPAddress(bytes: fields[1]) else {
                report.bad(line.number, "'\(String(decoding: fields[1].prefix(60), as: UTF8.self))' is not an IPv4 or IPv6 address")
                return true
            }
            if fields.count == 3 {
                let text = String(decoding: fields[2], as: UTF8.self)
                guard text == "0" || text == "1" else { report.bad(line.number, "label '\(text.prefix(20))' is not 0 or 1"); return true }
                labels.append(text == "1")
            }
            if labelled, sawLabel == nil { sawLabel = fields.count == 3 }
            result.pairs.append(entityHash: StableHash.xxh64(fields[0]), ip: ip)
            return true
        }
        if report.rows > 0, report.badShare > maximumBadShare {
            throw InputError(path: report.path, line: nil, message:
                "\(report.badRows) of \(report.rows) rows are malformed (more than \(formatShare(maximumBadShare))); first: \(report.problems.first.map(\.description) ?? "")")
        }
        if sawLabel == true { result.labels = labels }
        return (result, report)
    }

    static func formatShare(_ share: Double) -> String {
        let pct = share * 100
        return pct == pct.rounded() ? "\(Int(pct))%" : "\(pct)%"
    }
}
