import COpenBLAS

/// The numeric kernels of the model. Reductions use explicit SIMD accumulators
/// (the compiler never vectorises a float reduction on its own); matrix products
/// go to OpenBLAS, which picks the CPU's best kernels at run time.
enum Kernels {
    /// Σ a[i]·b[i] over n floats.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 16 <= n {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                  * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += ra.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
                  * rb.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var sum = (acc0 + acc1).sum()
        while i < n { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    /// y[i] += alpha·x[i].
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        let va = SIMD8<Float>(repeating: alpha)
        while i + 8 <= n {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                  + va * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += alpha * x[i]; i += 1 }
    }

    /// y[i] += x[i].
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        while i + 8 <= n {
            let v = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                  + rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            ry.storeBytes(of: v, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// For one row: a = tanh(a + bias); output = input + a (output may alias input).
    /// tanh is a [7/6] Padé approximant clamped to ±1 (absolute error below 1e-6 on
    /// [-3, 3], 1e-4 beyond); written as a plain loop because the compiler vectorises
    /// it, while SIMD-typed min/max are lowered lane by lane.
    @inline(__always)
    static func residualTanh(_ a: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
                             input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, _ n: Int) {
        for j in 0..<n {
            let c = min(max(a[j] + bias[j], -4.97), 4.97)
            let x2 = c * c
            let p = c * (((x2 + 378) * x2 + 17325) * x2 + 135135)
            let q = ((28 * x2 + 3150) * x2 + 62370) * x2 + 135135
            let t = min(max(p / q, -1), 1)
            a[j] = t
            output[j] = input[j] + t
        }
    }

    /// C[m×n] = alpha·A[m×k]·B[k×n] (+ beta·C), row-major, optional transposes.
    /// With `threads` > 1 the rows (or the columns, when there are more of them) of
    /// C are split into one slice per thread, each a single-threaded product. The
    /// split is a function of the shapes and `threads` alone, so a run is
    /// reproducible whatever else the process is doing.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int = 1) {
        _ = singleThreadedBLAS
        if m == 1 {
            // One row (scoring a single login): a matrix-vector product, which
            // skips the packing of B that a general product pays for.
            let incx = Int32(transA ? lda : 1)
            if transB {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incx, beta, c, 1)
            } else {
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incx, beta, c, 1)
            }
            return
        }
        let parts = m * n * k < 1 << 18 ? 1 : min(threads, max(m, n) / 16)
        if parts <= 1 {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
            return
        }
        if m >= n {
            Parallel.chunks(m, parts: parts) { _, lo, hi in
                gemm(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha, transA ? a + lo : a + lo * lda,
                     lda: lda, b, ldb: ldb, beta: beta, c + lo * ldc, ldc: ldc)
            }
        } else {
            Parallel.chunks(n, parts: parts) { _, lo, hi in
                gemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha, a, lda: lda,
                     transB ? b + lo * ldb : b + lo, ldb: ldb, beta: beta, c + lo, ldc: ldc)
            }
        }
    }

    /// OpenBLAS runs every product on the calling thread. Its own thread count is
    /// process-wide state: changed by one caller while another's product runs, it
    /// can leave that product wrong, and it spreads the k-sums of one product
    /// differently from run to run. Set once, before the first product.
    private static let singleThreadedBLAS: Void = openblas_set_num_threads(1)
}
