#ifndef CBATCHNORM_H
#define CBATCHNORM_H

/// BatchNorm's passes over one channel's row of `count` values, vectorised for the CPU at hand
/// (AVX-512, AVX2 or baseline x86-64, chosen when the library loads) with the same bits on
/// each: sums run in 16 float lanes over blocks of 256 values, each block's lanes added in
/// order into Double totals (which keep a 131,072-value row accurate enough for PyTorch
/// parity), and every multiply and add is rounded apart, as the Swift code they replace did.

/// `Σ x` and `Σ x²`.
void batch_norm_moments(const float *x, long count, double *sum, double *sum_of_squares);

/// `y = x·scale + shift`, then with `residual` `max(y + residual, 0)`, else with `relu`
/// `max(y, 0)`. `max(v, 0)` is `0 >= v ? 0 : v`, as Swift's: NaN passes, −0 becomes +0.
void batch_norm_apply(const float *x, const float *residual, float *y, long count, float scale, float shift, int relu);

/// Where the backward pass's incoming gradient `g` counts (elsewhere it is taken as zero):
/// everywhere when `output` is null and `rectified` zero; where `output` (a ReLU's output after
/// this layer) is positive; or, with `rectified`, where this layer's own ReLU passed its value,
/// `x·scale + shift > 0`, recomputed from `x` with the forward pass's rounding, so that the
/// output need not be read again.
typedef struct {
    const float *output;
    float scale, shift;
    int rectified;
} batch_norm_gate;

/// `Σ g` and `Σ g·(x − mean)` with `g` gated by `gate`.
void batch_norm_gradient_sums(const float *g, const batch_norm_gate *gate, const float *x, float mean, long count, double *sum,
                              double *dot_centered);

/// `out = a·g + b·x + c`, with `g` gated as in `batch_norm_gradient_sums`: the input gradient
/// once the two sums are known.
void batch_norm_input_gradient(const float *g, const batch_norm_gate *gate, const float *x, float *out, long count, float a,
                               float b, float c);

#endif
