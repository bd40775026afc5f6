import Glibc

/// A fixed-size buffer of floats that never reallocates or copies: the model's
/// tensors and the trainer's scratch space.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int, value: Float = 0) {
        self.count = count
        let bytes = max(count, 1) * 4
        // Large tables are read at random rows: back them with 2 MiB pages so each
        // row access does not also miss the TLB. Small ones just align to cache lines.
        let alignment = bytes >= FloatBuffer.hugePage * 2 ? FloatBuffer.hugePage : 64
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        if alignment == FloatBuffer.hugePage {
            _ = madvise(raw, (bytes + alignment - 1) / alignment * alignment, MADV_HUGEPAGE)
        }
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: value, count: count)
    }

    static let hugePage = 2 << 20

    public convenience init(copying other: FloatBuffer) {
        self.init(count: other.count)
        pointer.update(from: other.pointer, count: count)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// A fixed-size buffer of any plain values (row indices, addresses, flags) that
/// never reallocates: the trainer's step functions take its pointer as they take a
/// `FloatBuffer`'s, instead of borrowing arrays through nested closures.
final class ScratchBuffer<Element> {
    let count: Int
    let pointer: UnsafeMutablePointer<Element>

    init(count: Int, repeating value: Element) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: count)
    }

    deinit {
        pointer.deinitialize(count: count)
        pointer.deallocate()
    }
}
