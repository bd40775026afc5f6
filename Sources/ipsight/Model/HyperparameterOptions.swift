import IPSightCore
import ArgumentParser
import IPInsights
import IPInsightsFormats

/// `--hyperparameters FILE.json` and `-H name=value`, merged as SageMaker's
/// string-to-string map (later `-H` values win over the file).
struct HyperparameterOptions: ParsableArguments {
    @Option(name: .customLong("hyperparameters"), help: "JSON object of hyperparameters, e.g. {\"vector_dim\": \"128\"}.")
    var file: String?

    @Option(name: .customShort("H"), help: ArgumentHelp("A hyperparameter as name=value (repeatable).", valueName: "name=value"))
    var values: [String] = []

    func strings() throws -> [String: String] {
        var result: [String: String] = [:]
        if let file {
            let reader = try ByteLineReader(path: file)
            var bytes: [UInt8] = []
            try reader.forEachLine { line in bytes.append(contentsOf: line.bytes); bytes.append(0x0A); return true }
            let document: JSONValue
            do { document = try JSONValue.parse(bytes) } catch { throw ValidationError("\(file): \(error)") }
            guard let members = document.objectValue else { throw ValidationError("\(file): expected a JSON object of hyperparameters") }
            for (name, value) in members {
                switch value {
                case .string(let s): result[name] = s
                case .number(let n): result[name] = n == n.rounded() && abs(n) < 1e15 ? String(Int64(n)) : "\(n)"
                default: throw ValidationError("\(file): hyperparameter '\(name)' must be a string, found \(value.kindName)")
                }
            }
        }
        for item in values {
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("-H expects name=value, got '\(item)'")
            }
            result[String(item[..<eq])] = String(item[item.index(after: eq)...])
        }
        return result
    }
}

/// `--networks FILE`: where training draws its random negatives' addresses.
struct RandomNegativeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A routed-network table (first<TAB>last<TAB>asn rows, pyasn style, gzip allowed): random negatives come from its networks, each equally likely, instead of from the whole address space.", valueName: "file"))
    var networks: String?

    /// Reads the table, if any, and says what the negatives will be.
    func randomNegatives() throws -> RandomNegatives {
        guard let networks else { return .uniform }
        let table = try RoutedNetworksFile.read(path: networks)
        Console.error(RandomNegativeOptions.describe(table, path: networks))
        return .routed(table)
    }

    static func describe(_ table: RoutedNetworks, path: String) -> String {
        "random negatives from \(Console.grouped(Double(table.ipv4Starts.count))) IPv4 and \(Console.grouped(Double(table.ipv6Starts.count))) IPv6 routed networks in \(path)"
    }
}
