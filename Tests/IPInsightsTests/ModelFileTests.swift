import IPSightCore
import Testing
@testable import IPInsights
import Glibc

@Suite struct ModelFileTests {
    func smallModel() throws -> Model {
        var hp = Hyperparameters(numEntityVectors: 50, vectorDim: 16)
        hp.numIPEncoderLayers = 2
        hp.epochs = 3
        let model = Model(hyperparameters: try hp.validated(), layout: IPEncoderLayout(buckets: 256))
        model.initialise(seed: 11)
        model.trainedPairs = 1234
        model.trainedEpochs = 3
        return model
    }

    func temporaryPath(_ name: String) -> String {
        "/tmp/ipsight-test-\(getpid())-\(name)"
    }

    @Test func roundTripKeepsEveryParameterAndScore() throws {
        let model = try smallModel()
        let path = temporaryPath("roundtrip.model")
        defer { unlink(path) }
        try ModelFile.save(model, to: path)
        let loaded = try ModelFile.load(path: path)
        #expect(loaded.hyperparameters == model.hyperparameters)
        #expect(loaded.layout == model.layout)
        #expect(loaded.trainedPairs == 1234 && loaded.trainedEpochs == 3)
        #expect(loaded.entityTable.array == model.entityTable.array)
        #expect(loaded.ipTable.array == model.ipTable.array)
        for l in 0..<2 {
            #expect(loaded.weights[l].array == model.weights[l].array)
            #expect(loaded.biases[l].array == model.biases[l].array)
        }
        let ip = try #require(IPAddress("192.0.2.1"))
        #expect(loaded.score(entity: "alice", ip: ip) == model.score(entity: "alice", ip: ip))
        // No temporary file is left beside the model.
        #expect(access(path + ".tmp-\(getpid())", F_OK) != 0)
    }

    /// Why `data` does not load as a model, or nil when it does.
    static func decodeError(_ data: [UInt8]) -> String? {
        do {
            _ = try data.withUnsafeBytes { buffer throws(ModelFileError) in try ModelFile.decode(buffer) }
            return nil
        } catch { return (error as? ModelFileError)?.message ?? "\(error)" }
    }

    /// Rewrites the checksum after an edit, as a hand-made or tampered file would have it.
    static func resum(_ bytes: inout [UInt8]) {
        let body = bytes.count - 8
        let sum = bytes.withUnsafeBytes { StableHash.xxh64(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
        for k in 0..<8 { bytes[body + k] = UInt8(truncatingIfNeeded: sum >> (8 * UInt64(k))) }
    }

    /// The model file with one header field's text replaced (same length), checksum renewed.
    static func patched(_ bytes: [UInt8], replacing old: String, with new: String) throws -> [UInt8] {
        let from = Array(old.utf8), to = Array(new.utf8)
        precondition(from.count == to.count)
        let at = try #require((16..<min(bytes.count, 4096)).first { bytes[$0..<min(bytes.count, $0 + from.count)].elementsEqual(from) })
        var out = bytes
        out.replaceSubrange(at..<(at + to.count), with: to)
        resum(&out)
        return out
    }

    @Test func corruptionIsDetected() throws {
        let bytes = ModelFile.encode(try smallModel())
        let decodeError = Self.decodeError
        #expect(decodeError(bytes) == nil)
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x40
        #expect(decodeError(flipped)?.contains("checksum") == true)
        #expect(decodeError(Array(bytes.prefix(bytes.count - 100)))?.contains("checksum") == true)
        #expect(decodeError(Array(bytes.prefix(10)))?.contains("too short") == true)
        #expect(decodeError([UInt8](repeating: 0, count: 100))?.contains("magic") == true)
        var future = bytes
        future[8] = 9
        #expect(decodeError(future)?.contains("version 9") == true)
    }

    @Test func nonFiniteWeightsWithAValidChecksumAreRefused() throws {
        let model = try smallModel()
        let bytes = ModelFile.encode(model)
        for value in [Float.nan, .infinity, -.infinity] {
            // A float in the middle of the tensor data, overwritten and the file re-summed.
            var broken = bytes
            let at = (bytes.count - 8 - 4 * 64) / 4 * 4
            withUnsafeBytes(of: value) { for k in 0..<4 { broken[at + k] = $0[k] } }
            Self.resum(&broken)
            let error = Self.decodeError(broken)
            #expect(error?.contains("non-finite") == true, "\(value): \(String(describing: error))")
        }
        #expect(Self.decodeError(bytes) == nil)
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: ModelFileError.self) { try ModelFile.load(path: "/nonexistent/model") }
    }
}
