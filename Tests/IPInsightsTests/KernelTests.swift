import IPSightCore
import Testing
@testable import IPInsights

/// The matrix product against a plain triple loop, in every transpose form, for
/// one row (the matrix-vector path) and for many rows split over threads.
@Suite struct KernelTests {
    /// Row-major matrices with leading dimensions wider than the rows, to catch
    /// a stride taken for a width.
    static func product(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, threads: Int) -> (got: [Float], want: [Float]) {
        var rng = SeededRandom(seed: UInt64(m * 1000 + n * 10 + k))
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(rng.next() % 2001) / 1000 - 1 } }
        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 2, ldc = n + 1
        let a = random((transA ? k : m) * lda), b = random((transB ? n : k) * ldb)
        let c0 = random(m * ldc)
        var got = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                got.withUnsafeMutableBufferPointer { pc in
                    Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, pa.baseAddress!, lda: lda,
                                 pb.baseAddress!, ldb: ldb, beta: 2, pc.baseAddress!, ldc: ldc, threads: threads)
                }
            }
        }
        var want = c0
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for p in 0..<k {
                    let x = transA ? a[p * lda + i] : a[i * lda + p]
                    let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                    sum += Double(x) * Double(y)
                }
                want[i * ldc + j] = Float(0.5 * sum + 2 * Double(c0[i * ldc + j]))
            }
        }
        return (got, want)
    }

    @Test(arguments: [(1, 37, 29), (300, 40, 64), (40, 300, 64), (5, 7, 3)], [false, true])
    func productsMatchTheDefinition(shape: (Int, Int, Int), transA: Bool) {
        for transB in [false, true] {
            for threads in [1, 2] {
                let (m, n, k) = shape
                let (got, want) = Self.product(m: m, n: n, k: k, transA: transA, transB: transB, threads: threads)
                let worst = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-3, "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) threads \(threads): \(worst)")
            }
        }
    }
}
