import IPSightCore
import Glibc

/// The model file: one binary file, versioned and checksummed, written atomically.
///
/// ```
/// "IPSIGHTM"            8 bytes, magic
/// version               UInt32 little endian (1)
/// header length H       UInt32 little endian
/// header                H bytes of `key=value` lines (UTF-8): hyperparameters, layout, history
/// padding               zeros up to a multiple of 64 bytes
/// tensors               Float32 little endian, in the order the header lists them
/// checksum              UInt64 little endian, XXH64 of every byte before it
/// ```
/// The header is text so `head -c 2000 model | strings` tells what a file holds.
public enum ModelFile {
    public static let magic: [UInt8] = Array("IPSIGHTM".utf8)
    public static let version: UInt32 = 1

    public static func encode(_ model: Model) -> [UInt8] {
        var header: [(String, String)] = model.hyperparameters.orderedStrings
        header.append(("ip_buckets", String(model.layout.buckets)))
        header.append(("ipv4_prefixes", IPEncoderLayout.ipv4Prefixes.map(String.init).joined(separator: ",")))
        header.append(("ipv6_prefixes", IPEncoderLayout.ipv6Prefixes.map(String.init).joined(separator: ",")))
        if model.layout.familyRows { header.append(("family_rows", String(model.layout.familyWeight))) }
        if model.hasActivityPrior { header.append(("activity_prior", "1")) }
        header.append(("trained_pairs", String(model.trainedPairs)))
        header.append(("trained_epochs", String(model.trainedEpochs)))
        let tensors = tensorList(model)
        header.append(("tensors", tensors.map { "\($0.0):\($0.1.count)" }.joined(separator: ",")))
        let headerBytes = Array(header.map { "\($0.0)=\($0.1)\n" }.joined().utf8)

        var out: [UInt8] = []
        let dataBytes = tensors.reduce(0) { $0 + $1.1.count * 4 }
        out.reserveCapacity(16 + headerBytes.count + 64 + dataBytes + 8)
        out.append(contentsOf: magic)
        appendLE(version, to: &out)
        appendLE(UInt32(headerBytes.count), to: &out)
        out.append(contentsOf: headerBytes)
        while out.count % 64 != 0 { out.append(0) }
        for (_, buffer) in tensors {
            // Little-endian hosts (every platform Swift on Linux targets) copy as is.
            out.append(contentsOf: UnsafeRawBufferPointer(start: buffer.pointer, count: buffer.count * 4))
        }
        let sum = out.withUnsafeBytes { StableHash.xxh64($0) }
        appendLE(sum, to: &out)
        return out
    }

    static func tensorList(_ model: Model) -> [(String, FloatBuffer)] {
        var list = learntTensors(model)
        if let logins = model.logins { list.append(("logins", logins)) }
        return list
    }

    /// The tensors training changes (and iterate averaging averages).
    static func learntTensors(_ model: Model) -> [(String, FloatBuffer)] {
        var list: [(String, FloatBuffer)] = [("entity", model.entityTable), ("ip", model.ipTable)]
        for l in 0..<model.layerCount {
            list.append(("w\(l)", model.weights[l]))
            list.append(("b\(l)", model.biases[l]))
        }
        return list
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer, source: String = "model") throws(ModelFileError) -> Model {
        func fail(_ message: String) -> ModelFileError { ModelFileError(path: source, message: message) }
        guard bytes.count >= 24 else { throw fail("file is \(bytes.count) bytes: too short to be a model (truncated?)") }
        guard Array(bytes[0..<8]) == magic else { throw fail("not an ipsight model file (bad magic bytes)") }
        let version = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
        guard version == ModelFile.version else {
            throw fail("model file format version \(version) is not supported (this build reads version \(ModelFile.version))")
        }
        let stored = bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self).littleEndian
        let computed = StableHash.xxh64(UnsafeRawBufferPointer(rebasing: bytes[0..<(bytes.count - 8)]))
        guard stored == computed else { throw fail("checksum mismatch: the file is truncated or corrupted") }
        let headerLength = Int(bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian)
        guard 16 + headerLength <= bytes.count - 8 else { throw fail("header runs past the end of the file") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[16..<(16 + headerLength)]), as: UTF8.self)
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { throw fail("malformed header line '\(line.prefix(60))'") }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        let hpNames = Set(Hyperparameters.specs.map(\.name))
        let hp: Hyperparameters
        do {
            hp = try Hyperparameters(strings: fields.filter { hpNames.contains($0.key) })
        } catch {
            throw fail("invalid hyperparameters in header: \(error)")
        }
        guard let bucketText = fields["ip_buckets"], let buckets = Int(bucketText), buckets > 0,
              buckets & (buckets - 1) == 0, buckets <= 1 << 26 else { throw fail("missing or invalid ip_buckets in header") }
        guard fields["ipv4_prefixes"] == IPEncoderLayout.ipv4Prefixes.map(String.init).joined(separator: ","),
              fields["ipv6_prefixes"] == IPEncoderLayout.ipv6Prefixes.map(String.init).joined(separator: ",") else {
            throw fail("the model uses prefix lengths this build does not know")
        }
        var familyWeight = 0
        if let text = fields["family_rows"] {
            guard let value = Int(text), (0...IPEncoderLayout.maximumFamilyWeight).contains(value) else {
                throw fail("invalid family_rows '\(text.prefix(20))' in header (valid: 0 to \(IPEncoderLayout.maximumFamilyWeight))")
            }
            familyWeight = value
        }
        // Files written before the prior existed have no field: they score as they did.
        let activityPrior: Bool
        switch fields["activity_prior"] {
        case nil, "0": activityPrior = false
        case "1": activityPrior = true
        case let text?: throw fail("invalid activity_prior '\(text.prefix(20))' in header (valid: 0 or 1)")
        }
        let model = Model(hyperparameters: hp, layout: IPEncoderLayout(buckets: buckets, familyWeight: familyWeight),
                          activityPrior: activityPrior)
        model.trainedPairs = Int(fields["trained_pairs"] ?? "0") ?? 0
        model.trainedEpochs = Int(fields["trained_epochs"] ?? "0") ?? 0
        let tensors = tensorList(model)
        let expected = tensors.map { "\($0.0):\($0.1.count)" }.joined(separator: ",")
        guard fields["tensors"] == expected else { throw fail("tensor list '\(fields["tensors"] ?? "")' does not match the hyperparameters") }
        var offset = 16 + headerLength
        offset = (offset + 63) / 64 * 64
        let dataBytes = tensors.reduce(0) { $0 + $1.1.count * 4 }
        guard offset + dataBytes + 8 == bytes.count else {
            throw fail("file size \(bytes.count) does not match its header (expected \(offset + dataBytes + 8))")
        }
        for (name, buffer) in tensors {
            UnsafeMutableRawPointer(buffer.pointer).copyMemory(from: bytes.baseAddress! + offset, byteCount: buffer.count * 4)
            offset += buffer.count * 4
            // A valid checksum says the bytes arrived whole, not that a trainer wrote
            // numbers: one NaN would make every score NaN and every decision allow.
            if let index = firstNonFinite(UnsafeBufferPointer(start: buffer.pointer, count: buffer.count)) {
                throw fail("tensor \(name) holds a non-finite value (\(buffer.pointer[index])) at index \(index)")
            }
        }
        if let logins = model.logins {
            for r in 0..<logins.count where !(logins[r].isFinite && logins[r] >= 0) {
                throw fail("entity row \(r) has an invalid login count \(logins[r])")
            }
        }
        return model
    }

    /// The index of the first NaN or infinity, checked eight floats at a time
    /// (x − x is 0 for every finite x and NaN otherwise).
    static func firstNonFinite(_ values: UnsafeBufferPointer<Float>) -> Int? {
        var k = 0
        while k + 8 <= values.count {
            var v = SIMD8<Float>()
            for j in 0..<8 { v[j] = values[k + j] }
            if any((v - v) .!= SIMD8<Float>(repeating: 0)) { break }
            k += 8
        }
        while k < values.count {
            if !values[k].isFinite { return k }
            k += 1
        }
        return nil
    }

    /// Reads and checks a model file.
    public static func load(path: String) throws(ModelFileError) -> Model {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ModelFileError(path: path, message: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ModelFileError(path: path, message: String(cString: strerror(errno))) }
        let size = Int(st.st_size)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 64)
        defer { buffer.deallocate() }
        var got = 0
        while got < size {
            let n = read(fd, buffer.baseAddress! + got, size - got)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ModelFileError(path: path, message: n == 0 ? "file shrank while reading" : String(cString: strerror(errno))) }
            got += n
        }
        return try decode(UnsafeRawBufferPointer(rebasing: buffer[0..<size]), source: path)
    }

    /// Writes the model so that readers see either the old file or the new one, never
    /// a mix: a temporary file in the same directory, flushed, then renamed over.
    public static func save(_ model: Model, to path: String) throws(ModelFileError) {
        let bytes = encode(model)
        try AtomicFile.write(bytes, to: path)
    }
}

/// A model file that could not be read, decoded or written: a file error like any other.
public typealias ModelFileError = FileError

func appendLE<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
}
