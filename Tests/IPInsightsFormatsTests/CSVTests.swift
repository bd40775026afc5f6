import IPSightCore
import Testing
import IPInsights
@testable import IPInsightsFormats
import Glibc

@Suite struct CSVTests {
    func split(_ line: String) -> ([String], CSVProblem?) {
        var splitter = CSVSplitter()
        defer { splitter.deallocate() }
        var copy = line
        return copy.withUTF8 { buffer in
            let problem = splitter.split(UnsafeRawBufferPointer(buffer))
            return (splitter.fields.map { String(decoding: $0, as: UTF8.self) }, problem)
        }
    }

    @Test func splitsTheSpecificationsForm() {
        #expect(split("entity_id_1, 192.168.1.2").0 == ["entity_id_1", "192.168.1.2"])
        #expect(split("a,b,c").0 == ["a", "b", "c"])
        #expect(split("\"x, y\",\"say \"\"hi\"\"\" , 10.0.0.1 ").0 == ["x, y", "say \"hi\"", "10.0.0.1"])
        #expect(split("").0 == [""])
        #expect(split("a,").0 == ["a", ""])
    }

    @Test func reportsMalformedQuotes() {
        #expect(split("\"open, 1.2.3.4").1?.column == 1)
        #expect(split("\"a\"b, 1.2.3.4").1?.message == "text after a closing quote")
        #expect(split("a\"b, 1.2.3.4").1?.column == 2)
    }

    func write(_ text: String, to path: String) {
        let f = fopen(path, "w")!
        fputs(text, f)
        fclose(f)
    }

    @Test func readsPairsReportingBadRowsByLine() throws {
        let path = "/tmp/ipsight-csv-\(getpid()).csv"
        defer { unlink(path) }
        var text = ""
        for i in 0..<200 { text += "user_\(i % 7), 10.0.\(i % 256).1\r\n" }
        text += "broken row without comma\n\n\"quoted, user\",2001:db8::1\nuser_x,999.1.1.1\n"
        write(text, to: path)
        let (data, report) = try PairFile.read(path: path, maximumBadShare: 0.05)
        #expect(data.pairs.count == 201)
        #expect(report.rows == 203 && report.badRows == 2)
        #expect(report.problems.map(\.line) == [201, 204])
        #expect(report.problems[1].message.contains("999.1.1.1"))
        #expect(data.pairs.entityHashes[200] == StableHash.xxh64("quoted, user"))
        // Too many bad rows: refused, naming the count.
        #expect(throws: InputError.self) { try PairFile.read(path: path, maximumBadShare: 0.005) }
    }

    @Test func readsGzipFilesAndDetectsTruncation() throws {
        let plain = "/tmp/ipsight-gz-\(getpid()).csv"
        defer { unlink(plain); unlink(plain + ".gz") }
        var text = ""
        for i in 0..<50_000 { text += "u\(i % 97),192.0.2.\(i % 250)\n" }
        write(text, to: plain)
        #expect(system("gzip -k -f \(plain)") == 0)
        let (data, _) = try PairFile.read(path: plain + ".gz")
        #expect(data.pairs.count == 50_000)
        #expect(data.pairs.ips[49_999] == IPAddress("192.0.2.\(49_999 % 250)"))
        // Cut the compressed file short: an error, not a silently shorter data set.
        #expect(system("head -c 2000 \(plain).gz > \(plain).cut.gz") == 0)
        defer { unlink(plain + ".cut.gz") }
        #expect(throws: InputError.self) { try PairFile.read(path: plain + ".cut.gz") }
    }

    @Test func labelledFilesCarryLabels() throws {
        let path = "/tmp/ipsight-labels-\(getpid()).csv"
        defer { unlink(path) }
        write("a,1.2.3.4,0\nb,5.6.7.8,1\nc,9.9.9.9,2\n", to: path)
        let (data, report) = try PairFile.read(path: path, labelled: true, labelOptional: true, maximumBadShare: 0.5)
        #expect(data.labels == [false, true])
        #expect(report.problems.first?.message.contains("label") == true)
    }

    @Test func longLinesAreBoundedAndSkipped() throws {
        let path = "/tmp/ipsight-long-\(getpid()).csv"
        defer { unlink(path) }
        write("a,1.2.3.4\n" + String(repeating: "x", count: 200_000) + ",1.2.3.4\nb,1.2.3.5\n", to: path)
        let (data, report) = try PairFile.read(path: path, maximumBadShare: 0.5)
        #expect(data.pairs.count == 2)
        #expect(report.problems.first?.line == 2)
    }
}
