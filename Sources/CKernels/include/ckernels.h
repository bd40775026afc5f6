#ifndef IPSIGHT_CKERNELS_H
#define IPSIGHT_CKERNELS_H
#include <stddef.h>

/// One Adam step with L2 weight decay over n parameters, then zeroes the gradient.
/// lr_t already contains Adam's bias correction.
void ipsight_adam_step(float *restrict theta, float *restrict m, float *restrict v,
                       float *restrict grad, size_t n, float lr_t, float weight_decay,
                       float beta1, float beta2, float epsilon);

#endif
