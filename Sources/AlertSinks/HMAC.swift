/// HMAC-SHA256 (RFC 2104) for Standard Webhooks signatures.
public enum HMACSHA256 {
    public static func authenticationCode<K: Collection<UInt8>, M: Collection<UInt8>>(key: K, message: M) -> [UInt8] {
        // Keys longer than a block are hashed first; shorter ones are zero-padded.
        var block = key.count > SHA256.blockSize ? SHA256.hash(key) : Array(key)
        block.append(contentsOf: repeatElement(0, count: SHA256.blockSize - block.count))
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(inner.finalize())
        return outer.finalize()
    }
}
