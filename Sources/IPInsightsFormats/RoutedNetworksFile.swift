import IPSightCore

public enum RoutedNetworksFile {
    /// Reads a routed-network table: `first<TAB>last<TAB>asn` rows (pyasn's
    /// `ipasn` export; spaces also separate), plain or gzip, `#` comments skipped.
    /// A malformed row is an error: a table with holes would misplace addresses.
    public static func read(path: String) throws -> RoutedNetworks {
        let reader = try ByteLineReader(path: path, maximumLineLength: 4096)
        var rows: [(first: IPAddress, last: IPAddress, asn: UInt32)] = []
        try reader.forEachLine { line in
            let bytes = line.bytes
            if bytes.first == UInt8(ascii: "#") || bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return true }
            var fields: [UnsafeRawBufferPointer] = []
            var start = 0
            for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x09 || bytes[i] == 0x20 {
                if i > start { fields.append(UnsafeRawBufferPointer(rebasing: bytes[start..<i])) }
                start = i + 1
            }
            guard fields.count >= 3, let first = IPAddress(bytes: fields[0]), let last = IPAddress(bytes: fields[1]),
                  first.isIPv4 == last.isIPv4, first <= last,
                  let asn = UInt32(String(decoding: fields[2], as: UTF8.self)) else {
                throw InputError(path: reader.path, line: line.number,
                                 message: "expected first<TAB>last<TAB>asn, found '\(String(decoding: bytes.prefix(80), as: UTF8.self))'")
            }
            rows.append((first, last, asn))
            return true
        }
        guard !rows.isEmpty else { throw InputError(path: reader.path, line: nil, message: "no routed networks") }
        return RoutedNetworks(ranges: rows)
    }
}
