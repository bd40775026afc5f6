/// A compiled pattern lowered to plain operations over raw memory, so the hot
/// loop touches no reference counts and no enum payloads.
final class PatternProgram: @unchecked Sendable {
    struct Op {
        enum Kind: UInt8 { case literal, token, hostPort, free, quoted, time, structured }
        var kind: Kind
        var cls: UInt8 = 0
        var field: UInt8 = 0
        var nonEmpty = false
        var min: Int32 = 0
        var max: Int32 = 0
        /// Literal bytes in `bytes`.
        var start: Int32 = 0
        var count: Int32 = 0
        /// A free slot's longest text (the daemon truncates it), or Int.max.
        var maxLength = Int.max
    }

    let ops: UnsafeMutableBufferPointer<Op>
    let bytes: UnsafeMutableBufferPointer<UInt8>
    /// The free slot whose end is searched for, or -1.
    let split: Int
    let anchorStart: Int
    let anchorCount: Int
    let anchorAfterSpace: Bool
    /// A second free slot, followed by a bounded tail that ends the message, or -1.
    let split2: Int
    let anchor2Start: Int
    let anchor2Count: Int
    let anchor2AfterSpace: Bool
    /// Client text after the split: every reading is tried and only a unique one is taken.
    let unique: Bool
    /// The first byte a message must start with (after spaces), or -1 for any.
    let firstByte: Int
    /// The daemon's last word when a pattern ends on literal text: a message that does
    /// not end with it is refused before any scanning (most of a file's patterns).
    let lastWordStart: Int
    let lastWordCount: Int
    let table: UnsafePointer<UInt8> = ByteClass.pointer

    static let space = UInt8(ascii: " ")
    static let maxSpaceRun = 64

    init(elements: [Pattern.Element], split: Int?, anchor: [UInt8], anchorAfterSpace: Bool,
         split2: Int? = nil, anchor2: [UInt8] = [], anchor2AfterSpace: Bool = false, unique: Bool = false) {
        var ops: [Op] = []
        var bytes: [UInt8] = []
        func code(_ f: CaptureField?) -> UInt8 {
            switch f {
            case nil: return 0
            case .user: return 1
            case .host: return 2
            case .port: return 3
            case .method: return 4
            case .service: return 5
            case .text: return 6
            }
        }
        for element in elements {
            switch element {
            case .literal(let lit):
                ops.append(Op(kind: .literal, start: Int32(bytes.count), count: Int32(lit.count)))
                bytes += lit
            case .token(let field, let cls, let minimum, let maximum):
                ops.append(Op(kind: .token, cls: cls, field: code(field), min: Int32(minimum), max: Int32(maximum)))
            case .hostPort(let colonAfter):
                ops.append(Op(kind: .hostPort, nonEmpty: colonAfter))
            case .free(let field, let nonEmpty, _, let maxLength):
                ops.append(Op(kind: .free, field: code(field), nonEmpty: nonEmpty, maxLength: maxLength))
            case .quoted:
                ops.append(Op(kind: .quoted))
            case .time:
                ops.append(Op(kind: .time))
            case .structured:
                ops.append(Op(kind: .structured))
            }
        }
        anchorStart = bytes.count
        anchorCount = anchor.count
        bytes += anchor
        anchor2Start = bytes.count
        anchor2Count = anchor2.count
        bytes += anchor2
        var lastWord: [UInt8] = []
        if case .literal(let lit)? = elements.last {
            var end = lit.count
            while end > 0, lit[end - 1] == Self.space { end -= 1 }
            var start = end
            while start > 0, lit[start - 1] != Self.space { start -= 1 }
            lastWord = Array(lit[start..<end])
        }
        lastWordStart = bytes.count
        lastWordCount = lastWord.count
        bytes += lastWord
        self.split = split ?? -1
        self.anchorAfterSpace = anchorAfterSpace
        self.split2 = split2 ?? -1
        self.anchor2AfterSpace = anchor2AfterSpace
        self.unique = unique
        if case .literal(let lit)? = elements.first, let b = lit.first, b != Self.space {
            firstByte = Int(b)
        } else if case .structured(.json)? = elements.first {
            firstByte = Int(UInt8(ascii: "{"))
        } else {
            firstByte = -1
        }
        self.ops = .allocate(capacity: ops.count)
        _ = self.ops.initialize(from: ops)
        self.bytes = .allocate(capacity: max(1, bytes.count))
        _ = self.bytes.initialize(from: bytes)
    }

    deinit {
        ops.deallocate()
        bytes.deallocate()
    }

    @inline(__always)
    static func set(_ field: UInt8, _ range: Range<Int>, _ captures: inout Captures) {
        switch field {
        case 1: captures.user = range
        case 2: captures.host = range
        case 3: captures.port = range
        case 4: captures.method = range
        case 5: captures.service = range
        case 6: captures.text = range
        default: break
        }
    }

    func match(_ whole: UnsafeRawBufferPointer, _ captures: inout Captures) -> MatchStatus {
        // Spaces that end a message are the daemon's padding (pam_unix ends `rhost=H `), not text.
        var end = whole.count
        while end > 0, whole[end - 1] == Self.space { end -= 1 }
        let text = UnsafeRawBufferPointer(rebasing: whole[0..<end])
        let n = text.count
        if lastWordCount > 0 {
            guard n >= lastWordCount else { return .none }
            var k = 0
            while k < lastWordCount {
                if text[n - lastWordCount + k] != bytes[lastWordStart + k] { return .none }
                k += 1
            }
        }
        var start = 0
        while start < n, text[start] == Self.space { start += 1 }
        if firstByte >= 0 && (start == n || Int(text[start]) != firstByte) { return .none }
        if split < 0 {
            guard let end = forward(0, ops.count, from: start, text, &captures), end == n else { return .none }
            return .matched
        }
        guard let p = forward(0, split, from: start, text, &captures) else { return .none }
        // With a second free slot, its bounded tail is found first, at its rightmost fit:
        // the daemon writes it after the client text.
        var middleEnd = ops.count
        var tail = n
        if split2 >= 0 {
            guard let t = tailStart(text, from: p, &captures) else { return .none }
            tail = t
            middleEnd = split2
        }
        let free = ops[split]
        // The reading found so far (unique mode); kept out of the scanning loop's
        // state as a plain value so the loop does not copy it at every byte.
        var found = false
        var reading = Captures()
        var w = n - anchorCount
        // With client text after the split, readings longer than the daemon writes are
        // impossible and not tried. Otherwise the rightmost reading is the daemon's, and
        // one that breaks the bound means the line is not what the daemon writes: refused.
        if unique && free.maxLength != Int.max { w = min(w, p + free.maxLength + Self.maxSpaceRun + 1) }
        while w >= p {
            // Jump to the anchor's first byte with memrchr: lines are scanned by several patterns.
            guard let next = previous(bytes[anchorStart], in: text, from: p, through: w, count: anchorCount) else { break }
            w = next
            if anchorMatches(text, at: w, anchorStart, anchorCount) {
                var c = w
                var ok = true
                if anchorAfterSpace {
                    var k = w
                    while k > p, text[k - 1] == Self.space, w - k < Self.maxSpaceRun { k -= 1 }
                    ok = k < w
                    c = k
                }
                if ok && (!free.nonEmpty || c > p) && (!unique || c - p <= free.maxLength) {
                    var attempt = captures
                    if let end = forward(split + 1, middleEnd, from: c, text, &attempt), fits(end, tail, &attempt) {
                        Self.set(free.field, p..<c, &attempt)
                        if !unique {
                            guard c - p <= free.maxLength else { return .ambiguous }
                            captures = attempt
                            return .matched
                        }
                        if found { return .ambiguous }
                        found = true
                        reading = attempt
                    }
                }
            }
            w -= 1
        }
        guard found else { return .none }
        captures = reading
        return .matched
    }

    /// Whether the ops after the split end where they must: at the end of the
    /// message, or (two free slots) before the tail with the second slot between.
    @inline(__always)
    private func fits(_ end: Int, _ tail: Int, _ captures: inout Captures) -> Bool {
        guard split2 >= 0 else { return end == tail }
        let free = ops[split2]
        guard end <= tail, !free.nonEmpty || end < tail, tail - end <= free.maxLength else { return false }
        Self.set(free.field, end..<tail, &captures)
        return true
    }

    /// Where the tail after the second free slot starts: its rightmost fit that ends the message.
    private func tailStart(_ text: UnsafeRawBufferPointer, from p: Int, _ captures: inout Captures) -> Int? {
        let n = text.count
        var w = n - anchor2Count
        while w >= p {
            guard let next = previous(bytes[anchor2Start], in: text, from: p, through: w, count: anchor2Count) else { break }
            w = next
            if anchorMatches(text, at: w, anchor2Start, anchor2Count) {
                var c = w
                var ok = true
                if anchor2AfterSpace {
                    var k = w
                    while k > p, text[k - 1] == Self.space, w - k < Self.maxSpaceRun { k -= 1 }
                    ok = k < w
                    c = k
                }
                var attempt = captures
                if ok, let end = forward(split2 + 1, ops.count, from: c, text, &attempt), end == n {
                    captures = attempt
                    return c
                }
            }
            w -= 1
        }
        return nil
    }

    /// The last position in `from...through` holding `byte`; any position when the
    /// anchor is empty (word starts are tested one by one). Eight bytes at a time:
    /// several patterns scan each line from its end, and most bytes are not the anchor.
    @inline(__always)
    private func previous(_ byte: UInt8, in text: UnsafeRawBufferPointer, from p: Int, through w: Int, count: Int) -> Int? {
        guard count > 0 else { return w }
        var i = w
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        let pattern = ones &* UInt64(byte)
        while i >= p {
            if i - 7 >= p {
                let word = text.loadUnaligned(fromByteOffset: i - 7, as: UInt64.self) ^ pattern
                // A zero byte in `word` is a match (the classic has-zero-byte test).
                if (word &- ones) & ~word & highs == 0 { i -= 8; continue }
            }
            if text[i] == byte { return i }
            i -= 1
        }
        return nil
    }

    @inline(__always)
    private func anchorMatches(_ text: UnsafeRawBufferPointer, at w: Int, _ start: Int, _ count: Int) -> Bool {
        if count == 0 {
            // The text after the free part is a bare space: candidates are word starts.
            return w > 0 && w < text.count && text[w - 1] == Self.space && text[w] != Self.space
        }
        if w + count > text.count { return false }
        if text[w] != bytes[start] { return false }
        for k in 1..<max(1, count) where text[w + k] != bytes[start + k] { return false }
        return true
    }

    /// Runs ops [from, to) from `position`; returns where they end.
    private func forward(_ from: Int, _ to: Int, from position: Int, _ text: UnsafeRawBufferPointer,
                         _ captures: inout Captures) -> Int? {
        var pos = position
        let n = text.count
        var k = from
        while k < to {
            let op = ops[k]
            k += 1
            switch op.kind {
            case .literal:
                var i = Int(op.start)
                let end = i + Int(op.count)
                while i < end {
                    let b = bytes[i]
                    i += 1
                    guard pos < n, text[pos] == b else { return nil }
                    pos += 1
                    if b == Self.space {
                        var run = 1
                        while pos < n, text[pos] == Self.space, run < Self.maxSpaceRun { pos += 1; run += 1 }
                    }
                }
            case .token:
                let limit = min(n, pos + Int(op.max) + 1)
                var e = pos
                while e < limit, table[Int(text[e])] & op.cls != 0 { e += 1 }
                if op.cls & ByteClass.trailingDot != 0, e > pos, text[e - 1] == UInt8(ascii: ".") { e -= 1 }
                let length = e - pos
                guard length >= Int(op.min), length <= Int(op.max) else { return nil }
                Self.set(op.field, pos..<e, &captures)
                pos = e
            case .hostPort:
                let limit = min(n, pos + 72)
                var e = pos
                var lastColon = -1
                while e < limit, table[Int(text[e])] & ByteClass.host != 0 {
                    if text[e] == UInt8(ascii: ":") {
                        // A colon right after the port's digits is the daemon's, not the address's.
                        if op.nonEmpty, lastColon > pos, e > lastColon + 1 { break }
                        lastColon = e
                    }
                    e += 1
                }
                guard e < limit || e == n || (op.nonEmpty && text[e] == UInt8(ascii: ":")), lastColon > pos, e - lastColon - 1 >= 1, e - lastColon - 1 <= 5 else { return nil }
                for d in (lastColon + 1)..<e where table[Int(text[d])] & ByteClass.digit == 0 { return nil }
                captures.host = pos..<lastColon
                captures.port = (lastColon + 1)..<e
                pos = e
            case .free:
                // Only the last op reaches here: it takes the rest of the message.
                guard !op.nonEmpty || pos < n, n - pos <= op.maxLength else { return nil }
                Self.set(op.field, pos..<n, &captures)
                pos = n
            case .structured:
                captures.structured = pos..<n
                pos = n
            case .quoted:
                guard pos < n, text[pos] == UInt8(ascii: "\"") else { return nil }
                var e = pos + 1
                while e < n, text[e] != UInt8(ascii: "\"") {
                    e += text[e] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard e < n else { return nil }
                pos = e + 1
            case .time:
                guard let (time, end) = TimeText.parse(text, at: pos) else { return nil }
                captures.time = time
                pos = end
            }
        }
        return pos
    }
}
