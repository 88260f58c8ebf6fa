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

CLONES void batch_norm_gradient_sums(const float *g, const float *gate, const float *x, float mean, long count, double *sum,
                                     double *dot_centered) {
    const lanes16 center = SPLAT(mean);
    double total = 0, dots = 0;
    long i = 0;
    for (; i + block <= count; i += block) {
        lanes16 s = {}, d = {};
        for (long j = i; j < i + block; j += width) {
            const lanes16 v = gate ? GATED(LOAD(g + j), gate + j) : LOAD(g + j);
            s += v;
            d += v * (LOAD(x + j) - center);
        }
        ADD_LANE_SUM(total, s);
        ADD_LANE_SUM(dots, d);
    }
    for (; i < count; i++) {
        const float v = gate && !(gate[i] > 0) ? 0 : g[i];
        total += (double)v;
        dots += (double)(v * (x[i] - mean));
    }
    *sum = total;
    *dot_centered = dots;
}

CLONES void batch_norm_input_gradient(const float *g, const float *gate, const float *x, float *out, long count, float a, float b,
                                      float c) {
    const lanes16 va = SPLAT(a), vb = SPLAT(b), vc = SPLAT(c);
    long i = 0;
    for (; i + width <= count; i += width) {
        const lanes16 v = gate ? GATED(LOAD(g + i), gate + i) : LOAD(g + i);
        STORE(out + i, va * v + vb * LOAD(x + i) + vc);
    }
    for (; i < count; i++) {
        const float v = gate && !(gate[i] > 0) ? 0 : g[i];
        out[i] = a * v + b * x[i] + c;
    }
}
