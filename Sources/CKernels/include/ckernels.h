#ifndef IPSIGHT_CKERNELS_H
#define IPSIGHT_CKERNELS_H
#include <stddef.h>
#include <stdint.h>

/// One Adam step with L2 weight decay over n parameters, then zeroes the gradient.
/// lr_t already contains Adam's bias correction.
void ipsight_adam_step(float *restrict theta, float *restrict m, float *restrict v,
                       float *restrict grad, size_t n, float lr_t, float weight_decay,
                       float beta1, float beta2, float epsilon);

/// out row k (of d floats) = the sum of the table rows rows[starts[k]] ..<
/// rows[starts[k + 1]], for k < n; every address has at least one row.
void ipsight_gather_sums(const float *restrict table, size_t d, const int32_t *restrict rows,
                         const int32_t *restrict starts, size_t n, float *restrict out);

#endif
