/// Journal entries as the reading thread copied them: field values side by side
/// in one byte array, with per-entry spans. Copying is cheap; turning bytes into
/// strings and records is done later on the consumer's thread.
struct RawJournalBatch: Sendable {
    /// Span slots per entry: the fields of `JournalReader.fieldNames`, then the cursor.
    static let cursorIndex = JournalReader.fieldNames.count
    static let slots = cursorIndex + 1
    static let absent: Int32 = -1
    static let tooLong: Int32 = -2

    private(set) var count = 0
    private var bytes: [UInt8] = []
    /// (start, length) pairs, `slots` per entry; length `absent` or `tooLong`.
    private var spans: [Int32] = []
    private var times: [Double] = []

    init() {
        bytes.reserveCapacity(1 << 16)
    }

    mutating func beginEntry() {
        count += 1
        for _ in 0..<Self.slots { spans.append(0); spans.append(Self.absent) }
        times.append(.nan)
    }

    private var base: Int { (count - 1) * Self.slots * 2 }

    func hasField(_ index: Int) -> Bool { spans[base + 2 * index + 1] != Self.absent }

    mutating func setField(_ index: Int, _ value: UnsafeRawBufferPointer) {
        let slot = base + 2 * index
        spans[slot] = Int32(bytes.count)
        spans[slot + 1] = Int32(value.count)
        bytes.append(contentsOf: value)
    }

    /// The message exceeds the length limit: the entry is counted, not kept.
    mutating func markTooLong() {
        spans[base + 1] = Self.tooLong
    }

    mutating func setTime(_ time: Double?) {
        times[count - 1] = time ?? .nan
    }

    func isTooLong(_ entry: Int) -> Bool { spans[entry * Self.slots * 2 + 1] == Self.tooLong }

    func time(_ entry: Int) -> Double? {
        let t = times[entry]
        return t.isNaN ? nil : t
    }

    /// Gives access to the copied bytes, for `field`.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes(body)
    }

    /// The bytes of a field of an entry within `raw` (from `withBytes`); nil when absent.
    func field(_ entry: Int, _ index: Int, in raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        let slot = entry * Self.slots * 2 + 2 * index
        let length = spans[slot + 1]
        guard length >= 0 else { return nil }
        let start = Int(spans[slot])
        return UnsafeRawBufferPointer(rebasing: raw[start..<start + Int(length)])
    }

    func cursor(_ entry: Int) -> String? {
        guard entry >= 0 else { return nil }
        return withBytes { raw in field(entry, Self.cursorIndex, in: raw).map { String(decoding: $0, as: UTF8.self) } }
    }
}
