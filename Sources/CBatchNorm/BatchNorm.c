// BatchNorm's loops in C: Swift compiles for baseline x86-64, where its 16-lane SIMD types take
// four SSE registers each and the backward pass spilled to the stack. Here every function is
// built for AVX-512, AVX2 and baseline (`target_clones`, chosen at load time); the 16-lane
// vector type is one, two or four registers, and the arithmetic, hence the bits, is the same.

#include "BatchNorm.h"

#pragma STDC FP_CONTRACT OFF

typedef float lanes16 __attribute__((vector_size(64), aligned(4)));
typedef int mask16 __attribute__((vector_size(64)));

#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// Values per block whose 16-lane sums are added into the Double totals.
enum { block = 256, width = 16 };

// Macros rather than functions: a 16-lane vector passed by value would take a different ABI
// in each clone.
#define LOAD(p) (*(const lanes16 *)(p))
#define STORE(p, v) (*(lanes16 *)(p) = (v))
#define SPLAT(v) ((lanes16){} + (v))
// `v` where `gate > 0`, else 0.
#define GATED(v, gate) ((lanes16)((mask16)(v) & (LOAD(gate) > 0)))
// `0 >= v ? 0 : v` lane by lane.
#define RECTIFIED(v) ((lanes16)((mask16)(v) & ~((v) <= 0)))
// The lanes of `v` added in order from −0 into `total`, as Swift's `SIMD.sum()` adds them.
#define ADD_LANE_SUM(total, v)                                \
    do {                                                      \
        float lanes_total = -0.0f;                            \
        for (int l = 0; l < width; l++) lanes_total += (v)[l]; \
        (total) += lanes_total;                               \
    } while (0)

CLONES void batch_norm_moments(const float *x, long count, double *sum, double *sum_of_squares) {
    double total = 0, squares = 0;
    long i = 0;
    for (; i + block <= count; i += block) {
        lanes16 s = {}, q = {};
        for (long j = i; j < i + block; j += width) {
            const lanes16 v = LOAD(x + j);
            s += v;
            q += v * v;
        }
        ADD_LANE_SUM(total, s);
        ADD_LANE_SUM(squares, q);
    }
    for (; i < count; i++) {
        total += (double)x[i];
        squares += (double)x[i] * (double)x[i];
    }
    *sum = total;
    *sum_of_squares = squares;
}

CLONES void batch_norm_apply(const float *x, const float *residual, float *y, long count, float scale, float shift, int relu) {
    const lanes16 vscale = SPLAT(scale), vshift = SPLAT(shift);
    long i = 0;
    if (residual) {
        for (; i + width <= count; i += width) {
            const lanes16 v = LOAD(x + i) * vscale + vshift + LOAD(residual + i);
            STORE(y + i, RECTIFIED(v));
        }
        for (; i < count; i++) {
            const float v = x[i] * scale + shift + residual[i];
            y[i] = 0 >= v ? 0 : v;
        }
    } else if (relu) {
        for (; i + width <= count; i += width) {
            const lanes16 v = LOAD(x + i) * vscale + vshift;
            STORE(y + i, RECTIFIED(v));
        }
        for (; i < count; i++) {
            const float v = x[i] * scale + shift;
            y[i] = 0 >= v ? 0 : v;
        }
    } else {
        for (; i + width <= count; i += width) STORE(y + i, LOAD(x + i) * vscale + vshift);
        for (; i < count; i++) y[i] = x[i] * scale + shift;
    }
}

// `g` gated lane by lane: `OUTPUT` by the following ReLU's output, `RECTIFIED` by this layer's
// own ReLU recomputed from `x`, `NONE` not at all. One loop per kind, so the choice is not
// made per element.
enum { gate_none, gate_output, gate_rectified };
static int gate_kind(const batch_norm_gate *gate) { return gate->output ? gate_output : gate->rectified ? gate_rectified : gate_none; }
#define GATE_LANES(KIND, v, xv, i) \
    (KIND == gate_output ? GATED(v, gate->output + (i)) : KIND == gate_rectified ? (lanes16)((mask16)(v) & ((xv) * vscale + vshift > 0)) : (v))
#define GATE_ONE(KIND, v, xv, i) \
    (KIND == gate_output ? (gate->output[i] > 0 ? (v) : 0) : KIND == gate_rectified ? ((xv) * gate->scale + gate->shift > 0 ? (v) : 0) : (v))

#define GRADIENT_SUMS(KIND)                                                       \
    for (; i + block <= count; i += block) {                                      \
        lanes16 s = {}, d = {};                                                   \
        for (long j = i; j < i + block; j += width) {                             \
            const lanes16 xv = LOAD(x + j), v = GATE_LANES(KIND, LOAD(g + j), xv, j); \
            s += v;                                                               \
            d += v * (xv - center);                                               \
        }                                                                         \
        ADD_LANE_SUM(total, s);                                                   \
        ADD_LANE_SUM(dots, d);                                                    \
    }                                                                             \
    for (; i < count; i++) {                                                      \
        const float v = GATE_ONE(KIND, g[i], x[i], i);                            \
        total += (double)v;                                                       \
        dots += (double)(v * (x[i] - mean));                                      \
    }

CLONES void batch_norm_gradient_sums(const float *g, const batch_norm_gate *gate, const float *x, float mean, long count,
                                     double *sum, double *dot_centered) {
    const lanes16 center = SPLAT(mean), vscale = SPLAT(gate->scale), vshift = SPLAT(gate->shift);
    double total = 0, dots = 0;
    long i = 0;
    switch (gate_kind(gate)) {
    case gate_output: GRADIENT_SUMS(gate_output) break;
    case gate_rectified: GRADIENT_SUMS(gate_rectified) break;
    default: GRADIENT_SUMS(gate_none) break;
    }
    *sum = total;
    *dot_centered = dots;
}

#define INPUT_GRADIENT(KIND)                                                      \
    for (; i + width <= count; i += width) {                                      \
        const lanes16 xv = LOAD(x + i), v = GATE_LANES(KIND, LOAD(g + i), xv, i); \
        STORE(out + i, va * v + vb * xv + vc);                                    \
    }                                                                             \
    for (; i < count; i++) {                                                      \
        const float v = GATE_ONE(KIND, g[i], x[i], i);                            \
        out[i] = a * v + b * x[i] + c;                                            \
    }

CLONES void batch_norm_input_gradient(const float *g, const batch_norm_gate *gate, const float *x, float *out, long count,
                                      float a, float b, float c) {
    const lanes16 va = SPLAT(a), vb = SPLAT(b), vc = SPLAT(c), vscale = SPLAT(gate->scale), vshift = SPLAT(gate->shift);
    long i = 0;
    switch (gate_kind(gate)) {
    case gate_output: INPUT_GRADIENT(gate_output) break;
    case gate_rectified: INPUT_GRADIENT(gate_rectified) break;
    default: INPUT_GRADIENT(gate_none) break;
    }
}
