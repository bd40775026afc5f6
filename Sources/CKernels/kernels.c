#include "ckernels.h"
#include <math.h>

// Swift lowers Float.squareRoot() on SIMD vectors to one libm call per lane; clang
// vectorises this loop with packed square roots, which makes Adam 5-10x faster.
void ipsight_adam_step(float *restrict theta, float *restrict m, float *restrict v,
                       float *restrict grad, size_t n, float lr_t, float weight_decay,
                       float beta1, float beta2, float epsilon) {
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] + weight_decay * theta[i];
        float mm = beta1 * m[i] + c1 * g;
        float vv = beta2 * v[i] + c2 * g * g;
        m[i] = mm;
        v[i] = vv;
        theta[i] -= lr_t * mm / (sqrtf(vv) + epsilon);
        grad[i] = 0.0f;
    }
}
