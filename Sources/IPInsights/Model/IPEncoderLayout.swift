import IPSightCore
/// How an address becomes the rows of the IP table that the encoder sums.
///
/// Two kinds of rows, both of `vector_dim` floats:
/// - **prefix rows**, one per network the address lies in at a few prefix lengths
///   (IPv4 /8 /12 /16 /20 /24; IPv6 /16 /24 /32 /40 /48 /56 /64), hashed into
///   `buckets` rows. Neighbouring addresses share their coarse prefixes, so what is
///   learnt about one network carries over to the addresses next to it: this is how
///   the encoder exploits the prefix structure.
/// - **byte rows**, one per (position, value) of the address bytes (4 for IPv4,
///   16 for IPv6), in an exact table of 16 × 256 rows. Any two different addresses
///   differ in at least one byte, so their sums differ: every address has its own
///   representation even where prefix rows collide.
/// - **a family row**, one shared by every IPv4 address and one by every IPv6
///   address, counted `familyWeight` times in the sum (the header's `family_rows`;
///   models written before it have none). The score of a network no entity has
///   used rests mostly on it, so how readily an entity logs in from new networks is
///   one direction of its embedding, not a sum of its taste for the regions it
///   happened to visit. Counting it four times lets that direction move four times
///   as far per Adam step as a region's, so the habit is learnt from the few trips
///   a light user makes instead of staying near its starting point.
/// The family is part of every prefix hash, so IPv4 and IPv6 networks never share
/// a row by construction (only by hash collision).
public struct IPEncoderLayout: Sendable, Equatable {
    public static let ipv4Prefixes = [8, 12, 16, 20, 24]
    public static let ipv6Prefixes = [16, 24, 32, 40, 48, 56, 64]
    /// How many times new models count the family row.
    public static let defaultFamilyWeight = 4
    public static let maximumFamilyWeight = 8
    public static let maximumTokens = maximumFamilyWeight + ipv6Prefixes.count + 16

    /// Rows of the hashed prefix part (a power of two).
    public let buckets: Int
    /// How many times an address counts its family row: 0 in models written before
    /// the family rows existed (they load and score as they always did), 1 in the
    /// first models that had them.
    public let familyWeight: Int
    public var familyRows: Bool { familyWeight > 0 }
    public var rows: Int { buckets + 16 * 256 + (familyRows ? 2 : 0) }

    public init(buckets: Int, familyWeight: Int = IPEncoderLayout.defaultFamilyWeight) {
        precondition(buckets > 0 && buckets & (buckets - 1) == 0, "buckets must be a power of two")
        precondition((0...IPEncoderLayout.maximumFamilyWeight).contains(familyWeight), "family weight out of range")
        self.buckets = buckets
        self.familyWeight = familyWeight
    }

    /// The row every address of the family shares (only with `familyRows`).
    public func familyRow(ipv4: Bool) -> Int { buckets + 16 * 256 + (ipv4 ? 0 : 1) }

    /// The default size of the prefix table: about one row per entity vector
    /// (a power of two between 2^14 and 2^22), so the model's size follows
    /// `num_entity_vectors` as the specification describes. Measured on the
    /// simulated logins, larger tables memorise more and generalise worse: at
    /// 2,000 users, 4× as many rows lowered recall at 1% false positives from 0.34
    /// to 0.24, and 16× fewer raised it to 0.41 (shared rows act as a prior).
    public static func defaultBuckets(numEntityVectors: Int) -> Int {
        var b = 1 << 14
        while b < numEntityVectors && b < 1 << 22 { b <<= 1 }
        return b
    }

    /// Lists the table rows of every address in `ips`: those of address k are
    /// `rows[starts[k]..<starts[k + 1]]`. `rows` needs room for `maximumTokens` per
    /// address, `starts` for one more than the addresses.
    public func listTokens(of ips: UnsafeBufferPointer<IPAddress>, rows: UnsafeMutablePointer<Int32>,
                           starts: UnsafeMutablePointer<Int32>) {
        var used = 0
        for k in 0..<ips.count {
            starts[k] = Int32(used)
            used += tokens(of: ips[k], into: rows + used)
        }
        starts[ips.count] = Int32(used)
    }

    /// Writes the table rows of `ip` to `out` (room for `maximumTokens`) and returns how many.
    @inline(__always)
    public func tokens(of ip: IPAddress, into out: UnsafeMutablePointer<Int32>) -> Int {
        let mask = UInt64(buckets - 1)
        let family = Int32(familyRow(ipv4: ip.isIPv4))
        var n = 0
        while n < familyWeight {   // listed once per count: the gather sums it that often
            out[n] = family
            n += 1
        }
        if ip.isIPv4 {
            let v4 = UInt64(ip.low & 0xFFFF_FFFF)
            for length in IPEncoderLayout.ipv4Prefixes {
                let prefix = v4 >> UInt64(32 - length)
                let h = StableHash.mix(prefix ^ (UInt64(length) << 40) ^ 0x4000_0000_0000_0000)
                out[n] = Int32(truncatingIfNeeded: h & mask)
                n += 1
            }
            for k in 0..<4 {
                let byte = Int((v4 >> UInt64(24 - 8 * k)) & 0xFF)
                out[n] = Int32(buckets + (12 + k) * 256 + byte)
                n += 1
            }
        } else {
            for length in IPEncoderLayout.ipv6Prefixes {
                let prefix = ip.high >> UInt64(64 - length)
                let h = StableHash.mix(prefix ^ (UInt64(length) << 56) ^ 0x6000_0000_0000_0000)
                out[n] = Int32(truncatingIfNeeded: h & mask)
                n += 1
            }
            for k in 0..<16 {
                out[n] = Int32(buckets + k * 256 + Int(ip.byte(k)))
                n += 1
            }
        }
        return n
    }
}
