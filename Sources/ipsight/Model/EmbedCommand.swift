import IPSightCore
import ArgumentParser
import IPInsights
import IPInsightsFormats

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print the learnt embeddings of addresses or entities as JSON lines.",
        discussion: """
        One value per input line; output {"ip": ..., "ip_embedding": [...]} or
        {"entity": ..., "entity_embedding": [...]}. Unparseable lines are reported with
        their line number on standard error and skipped.
        Example: ipsight embed --model model.ipsight --ips addresses.txt > ip-embeddings.jsonl
        """
    )

    @Option(help: "The model file.") var model: String
    @Option(help: "A file of addresses, one per line ('-' for standard input).") var ips: String?
    @Option(help: "A file of entities, one per line ('-' for standard input).") var entities: String?

    func validate() throws {
        if (ips == nil) == (entities == nil) { throw ValidationError("give exactly one of --ips or --entities") }
    }

    func run() throws {
        let loaded = try ModelFile.load(path: model)
        let d = loaded.dimension
        let reader = try ByteLineReader(path: ips ?? entities, maximumLineLength: 1 << 16)
        let out = FileHandleOut.standardOutput
        var line: [UInt8] = []
        var skipped = 0
        let embedding = FloatBuffer(count: d), scratch = FloatBuffer(count: d)
        try reader.forEachLine { input in
            let text = String(decoding: input.bytes, as: UTF8.self).trimmingBlanks()
            if text.isEmpty { return true }
            line.removeAll(keepingCapacity: true)
            if ips != nil {
                guard let ip = IPAddress(text), !input.truncated else {
                    Console.error("\(reader.path):\(input.number): '\(text.prefix(60))' is not an IPv4 or IPv6 address; skipped")
                    skipped += 1
                    return true
                }
                withUnsafePointer(to: ip) {
                    loaded.encode(UnsafeBufferPointer(start: $0, count: 1), into: embedding.pointer, scratch: scratch.pointer)
                }
                line.append(contentsOf: Array("{\"ip\": ".utf8))
                JSONWriter.appendString(ip.description, to: &line)
                line.append(contentsOf: Array(", \"ip_embedding\": ".utf8))
                InferenceResponse.appendVector(UnsafeBufferPointer(start: embedding.pointer, count: d), to: &line)
            } else {
                line.append(contentsOf: Array("{\"entity\": ".utf8))
                JSONWriter.appendString(text, to: &line)
                line.append(contentsOf: Array(", \"entity_embedding\": ".utf8))
                InferenceResponse.appendVector(UnsafeBufferPointer(start: loaded.entityVector(row: loaded.entityRow(text)), count: d), to: &line)
            }
            line.append(contentsOf: Array("}\n".utf8))
            out.write(line)
            return true
        }
        out.flush()
        if skipped > 0 { Console.error("\(skipped) lines skipped") }
    }
}
