import IPSightCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// The `ipsight` binary run as a user runs it: real files, real processes.
@Suite(.serialized) struct CommandLineTests {
    static let root: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()
    static let binary = root + "/.build/debug/ipsight"
    static let work: String = {
        let dir = "/tmp/ipsight-cli-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    struct Run { var status: Int32; var out: String; var err: String }

    @discardableResult
    static func ipsight(_ arguments: [String], input: String? = nil) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inp
        try process.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try inp.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
                   err: String(decoding: errData, as: UTF8.self))
    }

    /// A small trained model shared by the tests (trained once).
    static let model: String = {
        var train = ""
        for u in 0..<60 {
            for k in 0..<40 { train += "user\(u), 10.\(u).\(k % 4).\(k)\n" }
        }
        try! train.write(toFile: work + "/train.csv", atomically: true, encoding: .utf8)
        // The logins that came after: the same users at home, a few of them elsewhere.
        var later = ""
        for u in 0..<60 {
            for k in 0..<5 { later += "user\(u),10.\(u).\(k % 4).\(40 + k)\n" }
            if u % 10 == 0 { later += "user\(u),198.51.100.\(u + 1)\n" }
        }
        try! later.write(toFile: work + "/calibration.csv", atomically: true, encoding: .utf8)
        let path = work + "/model.ipsight"
        let run = try! ipsight(["train", "--train", work + "/train.csv", "--output", path, "--seed", "3",
                                "-H", "num_entity_vectors=200", "-H", "vector_dim=16", "-H", "epochs=20",
                                "-H", "mini_batch_size=100", "-H", "learning_rate=0.05"])
        precondition(run.status == 0, run.err)
        return path
    }()

    @Test func trainReportsEpochsAndWritesAModel() throws {
        let path = Self.model
        #expect(FileManager.default.fileExists(atPath: path))
        let run = try Self.ipsight(["train", "--train", Self.work + "/train.csv", "--output", Self.work + "/m2",
                                    "-H", "num_entity_vectors=200", "-H", "vector_dim=16", "-H", "epochs=2",
                                    "--validation", Self.work + "/train.csv"])
        #expect(run.status == 0)
        #expect(run.err.contains("epoch 2/2: cross_entropy="))
        #expect(run.err.contains("validation:discriminator_auc="))
    }

    @Test func trainDrawsRandomNegativesFromARoutedTable() throws {
        _ = Self.model       // writes train.csv
        let table = Self.work + "/negatives.tsv", output = Self.work + "/routed.ipsight"
        try "172.16.0.0\t172.16.255.255\t64500\n2001:db8::\t2001:db8::ffff\t64501\n203.0.113.0 203.0.113.255 64502\n"
            .write(toFile: table, atomically: true, encoding: .utf8)
        let arguments = ["train", "--train", Self.work + "/train.csv", "--output", output, "--networks", table,
                         "-H", "num_entity_vectors=200", "-H", "vector_dim=16", "-H", "epochs=2"]
        let run = try Self.ipsight(arguments)
        #expect(run.status == 0, "\(run.err)")
        #expect(run.err.contains("random negatives from 2 IPv4 and 1 IPv6 routed networks in \(table)"), "\(run.err)")
        #expect(FileManager.default.fileExists(atPath: output))

        // A malformed table stops the run before any training, naming the line.
        try FileManager.default.removeItem(atPath: output)
        try "172.16.0.0\t172.16.255.255\t64500\n172.17.0.0\n".write(toFile: table, atomically: true, encoding: .utf8)
        let bad = try Self.ipsight(arguments)
        #expect(bad.status != 0 && bad.err.contains("\(table):2:") && bad.err.contains("first<TAB>last<TAB>asn"), "\(bad.err)")
        #expect(!bad.err.contains("epoch 1/2"))
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test func everyRequestAndResponseFormat() throws {
        let csv = "user1, 10.1.0.3\nuser2, 10.2.1.1\n"
        let json = #"{"instances": [{"data": {"features": {"values": ["user1", "10.1.0.3"]}}}, {"features": ["user2", "10.2.1.1"]}]}"#
        let jsonl = "{\"data\": {\"features\": {\"values\": [\"user1\", \"10.1.0.3\"]}}}\n{\"features\": [\"user2\", \"10.2.1.1\"]}\n"
        var scores: [[Double]] = []
        for (type, body) in [("text/csv", csv), ("application/json", json), ("application/jsonlines", jsonl)] {
            for accept in ["application/json", "application/jsonlines", "application/json;verbose=True", "application/jsonlines; verbose=True"] {
                let run = try Self.ipsight(["score", "--model", Self.model, "--content-type", type, "--accept", accept], input: body)
                #expect(run.status == 0, "\(type) → \(accept): \(run.err)")
                let predictions: [[String: Any]]
                if accept.hasPrefix("application/jsonlines") {
                    let lines = run.out.split(separator: "\n")
                    #expect(lines.count == 2)
                    predictions = try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
                } else {
                    let document = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as! [String: Any]
                    predictions = document["predictions"] as! [[String: Any]]
                }
                #expect(predictions.count == 2)
                let verbose = accept.contains("verbose")
                for p in predictions {
                    #expect(Set(p.keys) == (verbose ? ["dot_product", "entity_embedding", "ip_embedding"] : ["dot_product"]))
                    if verbose {
                        #expect((p["entity_embedding"] as! [Double]).count == 16)
                        #expect((p["ip_embedding"] as! [Double]).count == 16)
                    }
                }
                scores.append(predictions.map { $0["dot_product"] as! Double })
            }
        }
        // Every format scores the same pairs the same way.
        #expect(Set(scores.map { $0.map { ($0 * 1e5).rounded() } }).count == 1)
        // A known pair scores far above an unknown one.
        let known = try Self.ipsight(["score", "--model", Self.model], input: "user5,10.5.1.9\nuser5,203.0.113.9\n")
        let values = known.out.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Double] }
        #expect(values[0]["dot_product"]! > values[1]["dot_product"]! + 1)
    }

    @Test func badRecordsAndBadTypesAreNamed() throws {
        let bad = try Self.ipsight(["score", "--model", Self.model], input: "u,1.2.3.4\nu,300.1.1.1\nu,1.2.3.5\n")
        #expect(bad.status != 0)
        #expect(bad.err.contains("record 2") && bad.err.contains("300.1.1.1"))
        #expect(bad.out.split(separator: "\n").count == 1, "the records before the bad one are scored")
        let type = try Self.ipsight(["score", "--model", Self.model, "--content-type", "application/x-recordio-protobuf"], input: "")
        #expect(type.status != 0 && type.err.contains("unsupported content type"))
        let json = try Self.ipsight(["score", "--model", Self.model, "--content-type", "application/json"], input: "{\"instances\": [{\"features\": [\"a\"]}]}")
        #expect(json.status != 0 && json.err.contains("record 1"))
    }

    @Test func hyperparameterErrorsNameTheParameter() throws {
        let run = try Self.ipsight(["train", "--train", Self.work + "/train.csv", "--output", Self.work + "/x",
                                    "-H", "num_entity_vectors=200", "-H", "vector_dim=2", "-H", "epoch=3"])
        #expect(run.status != 0)
        #expect(run.err.contains("vector_dim=2 is out of range (valid: 4 ≤ integer ≤ 4096)"))
        #expect(run.err.contains("unknown hyperparameter 'epoch'"))
        try #"{"num_entity_vectors": "200", "vector_dim": "16", "epochs": "1", "learning_rate": 0.05}"#
            .write(toFile: Self.work + "/hp.json", atomically: true, encoding: .utf8)
        let file = try Self.ipsight(["train", "--train", Self.work + "/train.csv", "--output", Self.work + "/x",
                                     "--hyperparameters", Self.work + "/hp.json", "-H", "epochs=2"])
        #expect(file.status == 0, "\(file.err)")
        #expect(file.err.contains("epochs=2") && file.err.contains("learning_rate=0.05"))
    }

    @Test func warmStartKeepsTheShape() throws {
        let refused = try Self.ipsight(["train", "--train", Self.work + "/train.csv", "--output", Self.work + "/w",
                                        "--initial-model", Self.model, "-H", "vector_dim=32"])
        #expect(refused.status != 0 && refused.err.contains("vector_dim"))
        let run = try Self.ipsight(["train", "--train", Self.work + "/train.csv", "--output", Self.work + "/w",
                                    "--initial-model", Self.model, "-H", "epochs=1"])
        #expect(run.status == 0, "\(run.err)")
        #expect(run.err.contains("warm start"))
    }

    @Test func evalEmbedAndCorruptModels() throws {
        try "user1,10.1.0.1,0\nuser1,198.51.100.1,1\nuser2,10.2.0.9,0\nuser2,192.0.2.77,1\n"
            .write(toFile: Self.work + "/test.csv", atomically: true, encoding: .utf8)
        let eval = try Self.ipsight(["eval", "--model", Self.model, "--test", Self.work + "/test.csv"])
        let result = try JSONSerialization.jsonObject(with: Data(eval.out.utf8)) as! [String: Any]
        #expect(result["rows"] as? Int == 4)
        #expect((result["auc"] as! Double) > 0.9)
        let unlabelled = try Self.ipsight(["eval", "--model", Self.model, "--test", Self.work + "/train.csv"])
        #expect(unlabelled.out.contains("validation:discriminator_auc"))

        let embed = try Self.ipsight(["embed", "--model", Self.model, "--ips", "-"], input: "10.1.0.1\nnot-an-ip\n::ffff:10.1.0.1\n")
        let lines = embed.out.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("{\"ip\": \"10.1.0.1\", \"ip_embedding\": ["))
        #expect(lines[0] == lines[1], "mapped and plain IPv4 share one embedding")
        #expect(embed.err.contains("<stdin>:2"))

        var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.model))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: Self.work + "/corrupt.model"))
        let corrupt = try Self.ipsight(["score", "--model", Self.work + "/corrupt.model"], input: "a,1.2.3.4\n")
        #expect(corrupt.status != 0 && corrupt.err.contains("checksum mismatch"))
    }

    @Test func tuneSearchesAndKeepsTheBestModel() throws {
        let best = Self.work + "/best.model"
        let run = try Self.ipsight(["tune", "--train", Self.work + "/train.csv", "--validation", Self.work + "/train.csv",
                                    "--max-jobs", "3", "-H", "num_entity_vectors=200", "-H", "epochs=2",
                                    "--range", "vector_dim=8:32", "--range", "learning_rate=0.001:0.1", "--output", best])
        #expect(run.status == 0, "\(run.err)")
        let rows = run.out.split(separator: "\n")
        #expect(rows.count == 4, "a header and one row per job")
        #expect(rows[0].contains("vector_dim") && rows[0].contains("validation:discriminator_auc"))
        // Best first: the AUC column never rises down the table.
        let aucs = rows.dropFirst().map { Double($0.split(separator: " ", omittingEmptySubsequences: true)[3])! }
        #expect(aucs == aucs.sorted(by: >))
        #expect(FileManager.default.fileExists(atPath: best))
        let outside = try Self.ipsight(["tune", "--train", Self.work + "/train.csv", "--validation", Self.work + "/train.csv",
                                        "-H", "num_entity_vectors=200", "--range", "vector_dim=2:512"])
        #expect(outside.status != 0 && outside.err.contains("outside its tunable range"))
    }

    @Test func riskScoresComeWithReasons() throws {
        let refused = try Self.ipsight(["score", "--model", Self.model, "--accept", "application/jsonlines;risk=True"], input: "a,1.2.3.4\n")
        #expect(refused.status != 0 && refused.err.contains("--history"))
        let run = try Self.ipsight(["score", "--model", Self.model, "--history", Self.work + "/train.csv", "--calibration", Self.work + "/calibration.csv",
                                    "--accept", "application/jsonlines;risk=True"],
                                   input: "user5,10.5.2.33\nuser5,203.0.113.9\n")
        #expect(run.status == 0, "\(run.err)")
        let lines = try run.out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(lines.count == 2)
        let home = lines[0]["risk"] as! Double, away = lines[1]["risk"] as! Double
        #expect(home < 0.5 && away > 0.5 && home < away, "home \(home), away \(away)")
        let reasons = lines[1]["reasons"] as! [String: Any]
        #expect(reasons["logins_in_history"] as? Int ?? 0 > 20)
        #expect((reasons["main_factor"] as! String).isEmpty == false)
        #expect(reasons["nearest_network"] as? String == "10.5.0.0/24" || (reasons["nearest_network"] as? String)?.hasPrefix("10.5.") == true)
    }

    @Test func riskWithARoutedNetworkTable() throws {
        // One routed row per /16 of 10/8 the users live in, and 203.0.113/24.
        var table = "# first\tlast\tasn\n"
        for n in 0..<60 { table += "10.\(n).0.0\t10.\(n).255.255\t\(64_500 + n)\n" }
        table += "203.0.113.0\t203.0.113.255\t64499\n"
        let path = Self.work + "/networks.tsv"
        try table.write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try Self.ipsight(["score", "--model", Self.model, "--networks", path], input: "a,1.2.3.4\n")
        #expect(refused.status != 0 && refused.err.contains("--networks needs --history"))
        let run = try Self.ipsight(["score", "--model", Self.model, "--history", Self.work + "/train.csv", "--calibration", Self.work + "/calibration.csv", "--networks", path,
                                    "--accept", "application/jsonlines;risk=True"],
                                   input: "user5,10.5.2.33\nuser5,203.0.113.9\n")
        #expect(run.status == 0 && run.err.contains("61 routed networks"), "\(run.err)")
        let lines = try run.out.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let home = lines[0]["risk"] as! Double, away = lines[1]["risk"] as! Double
        #expect(home < away, "home \(home), away \(away)")
        // The reasons name the distance and both networks' AS numbers from the table.
        let reasons = lines[1]["reasons"] as! [String: Any]
        #expect(reasons["asn"] as? Int == 64_499 && reasons["nearest_network_asn"] as? Int == 64_505, "\(reasons)")
        #expect((reasons["routed_networks_away"] as? Int ?? 0) > 0)
        #expect((lines[0]["reasons"] as! [String: Any])["routed_networks_away"] as? Int == 0)
        try "10.0.0.0\tnot-an-address\t1\n".write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try Self.ipsight(["score", "--model", Self.model, "--history", Self.work + "/train.csv", "--calibration", Self.work + "/calibration.csv", "--networks", path,
                                    "--accept", "application/jsonlines;risk=True"],
                                   input: "user5,10.5.2.33\n")
        #expect(bad.status != 0 && bad.err.contains("first<TAB>last<TAB>asn"))
    }

    @Test func thresholdsMatchTheRequestedFalsePositiveRate() throws {
        let run = try Self.ipsight(["threshold", "--model", Self.model, "--normal", Self.work + "/train.csv", "--fpr", "0.05", "--fpr", "0.2"])
        #expect(run.status == 0, "\(run.err)")
        let result = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as! [String: Any]
        let t5 = result["dot_product_threshold_at_fpr_0.05"] as! Double, t20 = result["dot_product_threshold_at_fpr_0.2"] as! Double
        #expect(t5 <= t20)
        #expect(run.err.contains("dot_product of normal logins"))
        // Score the same rows: about 5% of them fall below the 5% threshold.
        let scored = try Self.ipsight(["score", "--model", Self.model, Self.work + "/train.csv"])
        let dots = scored.out.split(separator: "\n").map { (try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Double])["dot_product"]! }
        let below = Double(dots.filter { $0 < t5 }.count) / Double(dots.count)
        #expect(abs(below - 0.05) < 0.01, "share below the threshold: \(below)")
    }

    @Test func thresholdPlotIsWellFormedSVGWithTheThresholds() throws {
        // Normal rows from the training networks, attacks (label 1) from elsewhere.
        var rows = ""
        for u in 0..<60 { rows += "user\(u),10.\(u).\(u % 4).9,0\nuser\(u),172.16.\(u).\(u),1\n" }
        try rows.write(toFile: Self.work + "/labelled.csv", atomically: true, encoding: .utf8)
        let svgPath = Self.work + "/plot.svg"
        let run = try Self.ipsight(["threshold", "--model", Self.model, "--normal", Self.work + "/labelled.csv",
                                    "--history", Self.work + "/train.csv", "--calibration", Self.work + "/calibration.csv", "--fpr", "0.05", "--fpr", "0.2", "--plot", svgPath])
        #expect(run.status == 0, "\(run.err)")
        let result = try JSONSerialization.jsonObject(with: Data(run.out.utf8)) as! [String: Any]
        #expect(result["normal_logins"] as? Int == 60 && result["attacks"] as? Int == 60)
        let svg = try String(contentsOfFile: svgPath, encoding: .utf8)
        // Well-formed XML whose root is an svg element.
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [String] = [], texts: [String] = [], current = ""
            func parser(_ p: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]) {
                elements.append(name)
                current = ""
            }
            func parser(_ p: XMLParser, foundCharacters string: String) { current += string }
            func parser(_ p: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if name == "text" { texts.append(current) }
                current = ""
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = Collector()
        parser.delegate = collector
        #expect(parser.parse(), "\(String(describing: parser.parserError))")
        #expect(collector.elements.first == "svg")
        // Two panels (dot_product, risk), each with both histograms and its thresholds.
        #expect(collector.elements.filter { $0 == "path" }.count == 4)
        #expect(svg.components(separatedBy: "class=\"threshold\"").count - 1 == 8)
        let t5 = result["dot_product_threshold_at_fpr_0.05"] as! Double
        let r20 = result["risk_threshold_at_fpr_0.2"] as! Double
        // Each threshold's label carries its value, as printed (rounded).
        func labelled(_ prefix: String) -> Double? {
            collector.texts.first { $0.hasPrefix(prefix) }.flatMap { Double($0.dropFirst(prefix.count)) }
        }
        let shownT5 = try #require(labelled("FPR 5%: below "), "\(collector.texts)")
        let shownR20 = try #require(labelled("FPR 20%: risk above "), "\(collector.texts)")
        #expect(abs(shownT5 - t5) <= 0.0005 && abs(shownR20 - r20) <= 0.00005)
        #expect(collector.texts.contains { $0.contains("attacks (60)") })
    }
}
