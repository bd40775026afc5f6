import CKernels

enum Adam {
    static let beta1: Float = 0.9
    static let beta2: Float = 0.999
    static let epsilon: Float = 1e-8

    /// One Adam step on n parameters (`lrT` holds the bias correction); zeroes `grad`.
    @inline(__always)
    static func update(_ theta: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                       _ v: UnsafeMutablePointer<Float>, _ grad: UnsafeMutablePointer<Float>, _ n: Int,
                       lrT: Float, weightDecay: Float) {
        ipsight_adam_step(theta, m, v, grad, n, lrT, weightDecay, beta1, beta2, epsilon)
    }
}
