import CKernels
import Glibc

/// Adam (Kingma and Ba), with L2 weight decay added to the gradient.
enum Adam {
    static let beta1: Float = 0.9
    static let beta2: Float = 0.999
    static let epsilon: Float = 1e-8

    /// The learning rate of step `t` (1-based) with both moments' bias correction folded in.
    @inline(__always)
    static func correctedRate(_ learningRate: Float, step t: Float) -> Float {
        learningRate * (1 - powf(beta2, t)).squareRoot() / (1 - powf(beta1, t))
    }

    /// One Adam step on n parameters (`lrT` holds the bias correction); zeroes `grad`.
    @inline(__always)
    static func update(_ theta: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                       _ v: UnsafeMutablePointer<Float>, _ grad: UnsafeMutablePointer<Float>, _ n: Int,
                       lrT: Float, weightDecay: Float) {
        ipsight_adam_step(theta, m, v, grad, n, lrT, weightDecay, beta1, beta2, epsilon)
    }
}

/// Adam's first and second moments of one tensor, the tensor's shape.
struct AdamMoments {
    let m: FloatBuffer
    let v: FloatBuffer

    init(count: Int) {
        m = FloatBuffer(count: count)
        v = FloatBuffer(count: count)
    }
}
