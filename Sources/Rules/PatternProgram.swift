/// A compiled pattern lowered to plain operations over raw memory, so the hot
/// loop touches no reference counts and no enum payloads.
final class PatternProgram: @unchecked Sendable {
    struct Op {
        enum Kind: UInt8 { case literal, token, hostPort, free, quoted, clfTime }
        var kind: Kind
        var cls: UInt8 = 0
        var field: UInt8 = 0
        var nonEmpty = false
        var min: Int32 = 0
        var max: Int32 = 0
        /// Literal bytes in `bytes`.
        var start: Int32 = 0
        var count: Int32 = 0
    }

    let ops: UnsafeMutableBufferPointer<Op>
    let bytes: UnsafeMutableBufferPointer<UInt8>
    let split: Int
    let anchorStart: Int
    let anchorCount: Int
    let anchorAfterSpace: Bool
    /// The first byte a message must start with (after spaces), or -1 for any.
    let firstByte: Int
    let table: UnsafePointer<UInt8> = ByteClass.pointer

    static let space = UInt8(ascii: " ")
    static let maxSpaceRun = 64

    init(elements: [Pattern.Element], split: Int?, anchor: [UInt8], anchorAfterSpace: Bool) {
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
            }
        }
        for element in elements {
            switch element {
            case .literal(let lit):
                ops.append(Op(kind: .literal, start: Int32(bytes.count), count: Int32(lit.count)))
                bytes += lit
            case .token(let field, let cls, let minimum, let maximum):
                ops.append(Op(kind: .token, cls: cls, field: code(field), min: Int32(minimum), max: Int32(maximum)))
            case .hostPort:
                ops.append(Op(kind: .hostPort))
            case .free(let field, let nonEmpty):
                ops.append(Op(kind: .free, field: code(field), nonEmpty: nonEmpty))
            case .quoted:
                ops.append(Op(kind: .quoted))
            case .clfTime:
                ops.append(Op(kind: .clfTime))
            }
        }
        anchorStart = bytes.count
        anchorCount = anchor.count
        bytes += anchor
        self.split = split ?? -1
        self.anchorAfterSpace = anchorAfterSpace
        if case .literal(let lit)? = elements.first, let b = lit.first, b != Self.space {
            firstByte = Int(b)
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
        default: break
        }
    }

    func match(_ text: UnsafeRawBufferPointer, _ captures: inout Captures) -> Bool {
        let n = text.count
        var start = 0
        while start < n, text[start] == Self.space { start += 1 }
        if firstByte >= 0 && (start == n || Int(text[start]) != firstByte) { return false }
        if split < 0 {
            guard let end = forward(0, ops.count, from: start, text, &captures) else { return false }
            return end == n
        }
        guard let p = forward(0, split, from: start, text, &captures) else { return false }
        let free = ops[split]
        var w = n - anchorCount
        while w >= p {
            if anchorMatches(text, at: w) {
                var c = w
                var ok = true
                if anchorAfterSpace {
                    var k = w
                    while k > p, text[k - 1] == Self.space, w - k < Self.maxSpaceRun { k -= 1 }
                    ok = k < w
                    c = k
                }
                if ok && (!free.nonEmpty || c > p) {
                    var attempt = captures
                    if let end = forward(split + 1, ops.count, from: c, text, &attempt), end == n {
                        captures = attempt
                        Self.set(free.field, p..<c, &captures)
                        return true
                    }
                }
            }
            w -= 1
        }
        return false
    }

    @inline(__always)
    private func anchorMatches(_ text: UnsafeRawBufferPointer, at w: Int) -> Bool {
        if anchorCount == 0 {
            // The text after the free part is a bare space: candidates are word starts.
            return w > 0 && w < text.count && text[w - 1] == Self.space && text[w] != Self.space
        }
        if w + anchorCount > text.count { return false }
        if text[w] != bytes[anchorStart] { return false }
        for k in 1..<max(1, anchorCount) where text[w + k] != bytes[anchorStart + k] { return false }
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
                let length = e - pos
                guard length >= Int(op.min), length <= Int(op.max) else { return nil }
                Self.set(op.field, pos..<e, &captures)
                pos = e
            case .hostPort:
                let limit = min(n, pos + 72)
                var e = pos
                var lastColon = -1
                while e < limit, table[Int(text[e])] & ByteClass.host != 0 {
                    if text[e] == UInt8(ascii: ":") { lastColon = e }
                    e += 1
                }
                guard e < limit || e == n, lastColon > pos, e - lastColon - 1 >= 1, e - lastColon - 1 <= 5 else { return nil }
                for d in (lastColon + 1)..<e where table[Int(text[d])] & ByteClass.digit == 0 { return nil }
                captures.host = pos..<lastColon
                captures.port = (lastColon + 1)..<e
                pos = e
            case .free:
                // Only the last op reaches here: it takes the rest of the message.
                guard !op.nonEmpty || pos < n else { return nil }
                Self.set(op.field, pos..<n, &captures)
                pos = n
            case .quoted:
                guard pos < n, text[pos] == UInt8(ascii: "\"") else { return nil }
                var e = pos + 1
                while e < n, text[e] != UInt8(ascii: "\"") {
                    e += text[e] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard e < n else { return nil }
                pos = e + 1
            case .clfTime:
                guard let (time, end) = Pattern.clfTime(text, pos) else { return nil }
                captures.time = time
                pos = end
            }
        }
        return pos
    }
}
