#include "CSparse.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CSPARSE_X86 1
#endif

/* Portable versions: the same loops and summation order, one lane at a time. */
static void gather_portable(float *out, const float *src, const int32_t *outBase, const int32_t *srcBase,
                            int32_t positions, const int32_t *offset, const float *w, int32_t taps, int32_t np) {
    for (int32_t p = 0; p < positions; p++) {
        float *o = out + (int64_t)outBase[p] * np;
        const float *s = src + (int64_t)srcBase[p] * np;
        for (int32_t l = 0; l < np; l++) o[l] = 0;
        for (int32_t t = 0; t < taps; t++) {
            const float *x = s + (int64_t)offset[t] * np;
            const float wt = w[t];
            for (int32_t l = 0; l < np; l++) o[l] += wt * x[l];
        }
    }
}

static void dot_portable(float *gradient, const float *x, const float *dy, const int32_t *xBase, const int32_t *dyBase,
                         int32_t positions, const int32_t *offset, int32_t taps, int32_t np) {
    for (int32_t t = 0; t < taps; t++) {
        float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int32_t p = 0; p < positions; p++) {
            const float *a = dy + (int64_t)dyBase[p] * np;
            const float *b = x + ((int64_t)xBase[p] + offset[t]) * np;
            for (int32_t l = 0; l < np; l++) lanes[l & 7] += a[l] * b[l];
        }
        gradient[t] = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    }
}

#ifdef CSPARSE_X86
/* The gather on 16 lanes (the engine's blocks) for every group of a range, positions
 * outermost: the sources of four positions (every input channel's taps around them, 18 KB for
 * 16 channels) stay in L1 while each group gathers from them, where group by group the whole
 * input block passed through L1 once per group. Output-stationary: four positions × 16 lanes
 * stay in eight registers while every tap adds one broadcast weight times each position's
 * lanes, in the portable loop's order. */
__attribute__((target("avx2,fma")))
static void gather_groups_16_avx2(float *out, int64_t outStride, const float *src, const int32_t *outBase,
                                  const int32_t *srcBase, int32_t firstPosition, int32_t endPosition, const intptr_t *bounds,
                                  int32_t chunks, int32_t first, int32_t step, int32_t groups, const int32_t *offset,
                                  const float *w) {
    const intptr_t span = chunks + 1;
    int32_t p = firstPosition;
    for (; p + 4 <= endPosition; p += 4) {
        const float *s0 = src + (int64_t)srcBase[p] * 16, *s1 = src + (int64_t)srcBase[p + 1] * 16;
        const float *s2 = src + (int64_t)srcBase[p + 2] * 16, *s3 = src + (int64_t)srcBase[p + 3] * 16;
        const int64_t q0 = (int64_t)outBase[p] * 16, q1 = (int64_t)outBase[p + 1] * 16;
        const int64_t q2 = (int64_t)outBase[p + 2] * 16, q3 = (int64_t)outBase[p + 3] * 16;
        for (int32_t j = 0; j < chunks; j++) {
            for (int32_t k = 0; k < groups; k++) {
                const intptr_t *b = bounds + (first + (intptr_t)k * step) * span + j;
                const intptr_t end = b[1];
                if (j > 0 && b[0] == end) continue;
                float *target = out + k * outStride;
                float *o0 = target + q0, *o1 = target + q1, *o2 = target + q2, *o3 = target + q3;
                __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
                if (j > 0) {
                    a0 = _mm256_loadu_ps(o0);
                    b0 = _mm256_loadu_ps(o0 + 8);
                    a1 = _mm256_loadu_ps(o1);
                    b1 = _mm256_loadu_ps(o1 + 8);
                    a2 = _mm256_loadu_ps(o2);
                    b2 = _mm256_loadu_ps(o2 + 8);
                    a3 = _mm256_loadu_ps(o3);
                    b3 = _mm256_loadu_ps(o3 + 8);
                }
                for (intptr_t t = b[0]; t < end; t++) {
                    const int64_t o = (int64_t)offset[t] * 16;
                    const __m256 wt = _mm256_broadcast_ss(w + t);
                    a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s0 + o), a0);
                    b0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s0 + o + 8), b0);
                    a1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s1 + o), a1);
                    b1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s1 + o + 8), b1);
                    a2 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s2 + o), a2);
                    b2 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s2 + o + 8), b2);
                    a3 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s3 + o), a3);
                    b3 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s3 + o + 8), b3);
                }
                _mm256_storeu_ps(o0, a0);
                _mm256_storeu_ps(o0 + 8, b0);
                _mm256_storeu_ps(o1, a1);
                _mm256_storeu_ps(o1 + 8, b1);
                _mm256_storeu_ps(o2, a2);
                _mm256_storeu_ps(o2 + 8, b2);
                _mm256_storeu_ps(o3, a3);
                _mm256_storeu_ps(o3 + 8, b3);
            }
        }
    }
    for (; p < endPosition; p++) {
        const float *s0 = src + (int64_t)srcBase[p] * 16;
        for (int32_t k = 0; k < groups; k++) {
            const intptr_t *b = bounds + (first + (intptr_t)k * step) * span;
            const intptr_t end = b[chunks];
            __m256 a0 = _mm256_setzero_ps(), b0 = a0;
            for (intptr_t t = b[0]; t < end; t++) {
                const int64_t o = (int64_t)offset[t] * 16;
                const __m256 wt = _mm256_broadcast_ss(w + t);
                a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s0 + o), a0);
                b0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(s0 + o + 8), b0);
            }
            float *o0 = out + k * outStride + (int64_t)outBase[p] * 16;
            _mm256_storeu_ps(o0, a0);
            _mm256_storeu_ps(o0 + 8, b0);
        }
    }
}

/* Taps of one kernel row that read neighbouring positions (offsets o, o ± 1, o ± 2), applied
 * to eight neighbouring positions: the 8 + 2 source vectors they read are loaded once (10
 * loads for 24 multiply-adds where tap by tap took 24). `x` is the lowest source; tap r of
 * the run reads x + (shift_r + i)·16 for position i. Each position adds the taps in their
 * order, as tap by tap. */
__attribute__((target("avx512f"), always_inline))
static inline void taps3_8(__m512 a[8], const float *x, const float *w, int s0, int s1, int s2) {
    __m512 v[10];
    for (int m = 0; m < 10; m++) v[m] = _mm512_loadu_ps(x + m * 16);
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]), w2 = _mm512_set1_ps(w[2]);
    for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w0, v[s0 + i], a[i]);
    for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w1, v[s1 + i], a[i]);
    for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w2, v[s2 + i], a[i]);
}

__attribute__((target("avx512f"), always_inline))
static inline void taps2_8(__m512 a[8], const float *x, const float *w, int s0, int s1) {
    __m512 v[9];
    for (int m = 0; m < 9; m++) v[m] = _mm512_loadu_ps(x + m * 16);
    const __m512 w0 = _mm512_set1_ps(w[0]), w1 = _mm512_set1_ps(w[1]);
    for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w0, v[s0 + i], a[i]);
    for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(w1, v[s1 + i], a[i]);
}

/* `gather_groups_16_avx2` with AVX-512: a position's 16 lanes in one register, so a run of
 * eight positions shares each tap's broadcast and offset. Each lane sums the same products in
 * the same order: the same bits. */
__attribute__((target("avx512f")))
static void gather_groups_16_avx512(float *out, int64_t outStride, const float *src, const int32_t *outBase,
                                    const int32_t *srcBase, int32_t firstPosition, int32_t endPosition, const intptr_t *bounds,
                                    int32_t chunks, int32_t first, int32_t step, int32_t groups, const int32_t *offset,
                                    const float *w) {
    enum { run = 8 };
    const intptr_t span = chunks + 1;
    int32_t p = firstPosition;
    for (; p + run <= endPosition; p += run) {
        const float *s[run];
        int64_t q[run];
        int consecutive = 1;
        for (int32_t i = 0; i < run; i++) {
            s[i] = src + (int64_t)srcBase[p + i] * 16;
            q[i] = (int64_t)outBase[p + i] * 16;
            consecutive &= srcBase[p + i] == srcBase[p] + i;
        }
        for (int32_t j = 0; j < chunks; j++) {
            for (int32_t k = 0; k < groups; k++) {
                const intptr_t *b = bounds + (first + (intptr_t)k * step) * span + j;
                const intptr_t end = b[1];
                if (j > 0 && b[0] == end) continue;
                float *target = out + k * outStride;
                __m512 a[run];
                for (int32_t i = 0; i < run; i++) a[i] = j == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(target + q[i]);
                intptr_t t = b[0];
                if (consecutive) {
                    while (t < end) {
                        const int32_t o = offset[t];
                        const int32_t d = t + 1 < end ? offset[t + 1] - o : 0;
                        if ((d == 1 || d == -1) && t + 2 < end && offset[t + 2] - offset[t + 1] == d) {
                            if (d == 1) taps3_8(a, s[0] + (int64_t)o * 16, w + t, 0, 1, 2);
                            else taps3_8(a, s[0] + (int64_t)(o - 2) * 16, w + t, 2, 1, 0);
                            t += 3;
                        } else if (d == 1 || d == -1) {
                            if (d == 1) taps2_8(a, s[0] + (int64_t)o * 16, w + t, 0, 1);
                            else taps2_8(a, s[0] + (int64_t)(o - 1) * 16, w + t, 1, 0);
                            t += 2;
                        } else {
                            const __m512 wt = _mm512_set1_ps(w[t]);
                            for (int32_t i = 0; i < run; i++) a[i] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s[i] + (int64_t)o * 16), a[i]);
                            t += 1;
                        }
                    }
                }
                for (; t < end; t++) {
                    const int64_t o = (int64_t)offset[t] * 16;
                    const __m512 wt = _mm512_set1_ps(w[t]);
                    for (int32_t i = 0; i < run; i++) a[i] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(s[i] + o), a[i]);
                }
                for (int32_t i = 0; i < run; i++) _mm512_storeu_ps(target + q[i], a[i]);
            }
        }
    }
    for (; p < endPosition; p++) {
        const float *s0 = src + (int64_t)srcBase[p] * 16;
        for (int32_t k = 0; k < groups; k++) {
            const intptr_t *b = bounds + (first + (intptr_t)k * step) * span;
            const intptr_t end = b[chunks];
            __m512 a = _mm512_setzero_ps();
            for (intptr_t t = b[0]; t < end; t++) a = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), _mm512_loadu_ps(s0 + (int64_t)offset[t] * 16), a);
            _mm512_storeu_ps(out + k * outStride + (int64_t)outBase[p] * 16, a);
        }
    }
}

__attribute__((target("avx2,fma")))
static float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Four taps at a time share each load of dY; a tap's sum runs over positions and lanes in
 * one fixed order whatever block it falls in. */
__attribute__((target("avx2,fma")))
static void dot_avx2(float *gradient, const float *x, const float *dy, const int32_t *xBase, const int32_t *dyBase,
                     int32_t positions, const int32_t *offset, int32_t taps, int32_t np) {
    int32_t t = 0;
    for (; t + 4 <= taps; t += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        const int64_t o0 = offset[t], o1 = offset[t + 1], o2 = offset[t + 2], o3 = offset[t + 3];
        for (int32_t p = 0; p < positions; p++) {
            const float *d = dy + (int64_t)dyBase[p] * np;
            const float *s = x + (int64_t)xBase[p] * np;
            const float *s0 = s + o0 * np, *s1 = s + o1 * np, *s2 = s + o2 * np, *s3 = s + o3 * np;
            int32_t l = 0;
            for (; l + 16 <= np; l += 16) {
                const __m256 d0 = _mm256_loadu_ps(d + l), d1 = _mm256_loadu_ps(d + l + 8);
                a0 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s0 + l), a0);
                b0 = _mm256_fmadd_ps(d1, _mm256_loadu_ps(s0 + l + 8), b0);
                a1 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s1 + l), a1);
                b1 = _mm256_fmadd_ps(d1, _mm256_loadu_ps(s1 + l + 8), b1);
                a2 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s2 + l), a2);
                b2 = _mm256_fmadd_ps(d1, _mm256_loadu_ps(s2 + l + 8), b2);
                a3 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s3 + l), a3);
                b3 = _mm256_fmadd_ps(d1, _mm256_loadu_ps(s3 + l + 8), b3);
            }
            for (; l < np; l += 8) {
                const __m256 d0 = _mm256_loadu_ps(d + l);
                a0 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s0 + l), a0);
                a1 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s1 + l), a1);
                a2 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s2 + l), a2);
                a3 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(s3 + l), a3);
            }
        }
        gradient[t] = horizontal_sum(_mm256_add_ps(a0, b0));
        gradient[t + 1] = horizontal_sum(_mm256_add_ps(a1, b1));
        gradient[t + 2] = horizontal_sum(_mm256_add_ps(a2, b2));
        gradient[t + 3] = horizontal_sum(_mm256_add_ps(a3, b3));
    }
    for (; t < taps; t++) {
        __m256 a0 = _mm256_setzero_ps(), b0 = a0;
        const int64_t o0 = offset[t];
        for (int32_t p = 0; p < positions; p++) {
            const float *d = dy + (int64_t)dyBase[p] * np;
            const float *s0 = x + ((int64_t)xBase[p] + o0) * np;
            int32_t l = 0;
            for (; l + 16 <= np; l += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(d + l), _mm256_loadu_ps(s0 + l), a0);
                b0 = _mm256_fmadd_ps(_mm256_loadu_ps(d + l + 8), _mm256_loadu_ps(s0 + l + 8), b0);
            }
            for (; l < np; l += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(d + l), _mm256_loadu_ps(s0 + l), a0);
        }
        gradient[t] = horizontal_sum(_mm256_add_ps(a0, b0));
    }
}

/* `dot_avx2` on the engine's 16 lanes with AVX-512: one register per tap instead of two, so
 * eight taps share each load of dY (four there) and the position indices. Each lane sums over
 * the positions in the same order, and the sixteen lanes are folded as `dot_avx2` folds its
 * two halves (lane l + lane l + 8, then `horizontal_sum`): the same bits. */
__attribute__((target("avx512f,avx2,fma")))
static float fold16(__m512 v) {
    return horizontal_sum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

__attribute__((target("avx512f,avx2,fma")))
static void dot_16_avx512(float *gradient, const float *x, const float *dy, const int32_t *xBase, const int32_t *dyBase,
                          int32_t positions, const int32_t *offset, int32_t taps) {
    int32_t t = 0;
    for (; t + 8 <= taps; t += 8) {
        __m512 a[8];
        int64_t o[8];
        for (int32_t k = 0; k < 8; k++) {
            a[k] = _mm512_setzero_ps();
            o[k] = (int64_t)offset[t + k] * 16;
        }
        for (int32_t p = 0; p < positions; p++) {
            const __m512 d = _mm512_loadu_ps(dy + (int64_t)dyBase[p] * 16);
            const float *s = x + (int64_t)xBase[p] * 16;
            for (int32_t k = 0; k < 8; k++) a[k] = _mm512_fmadd_ps(d, _mm512_loadu_ps(s + o[k]), a[k]);
        }
        for (int32_t k = 0; k < 8; k++) gradient[t + k] = fold16(a[k]);
    }
    for (; t < taps; t++) {
        __m512 a = _mm512_setzero_ps();
        const int64_t o = (int64_t)offset[t] * 16;
        for (int32_t p = 0; p < positions; p++)
            a = _mm512_fmadd_ps(_mm512_loadu_ps(dy + (int64_t)dyBase[p] * 16), _mm512_loadu_ps(x + (int64_t)xBase[p] * 16 + o), a);
        gradient[t] = fold16(a);
    }
}

/* The vector instructions this CPU runs: 2 AVX-512F (with AVX2 and FMA), 1 AVX2 with FMA, 0
 * neither; probed once. */
static int vector_level(void) {
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        level = avx2 ? (__builtin_cpu_supports("avx512f") ? 2 : 1) : 0;
    }
    return level;
}
#else
static int vector_level(void) { return 0; }
#endif

static inline int has_avx2(void) { return vector_level() >= 1; }
static inline int has_avx512(void) { return vector_level() == 2; }

int32_t csparse_uses_avx2(void) { return has_avx2(); }

void csparse_gather_groups(float *out, int64_t outStride, const float *src, const int32_t *outBase, const int32_t *srcBase,
                           int32_t firstPosition, int32_t endPosition, const intptr_t *bounds, int32_t chunks, int32_t first,
                           int32_t step, int32_t groups, const int32_t *offset, const float *w, int32_t np) {
#ifdef CSPARSE_X86
    if (has_avx512() && np == 16) {
        gather_groups_16_avx512(out, outStride, src, outBase, srcBase, firstPosition, endPosition, bounds, chunks, first, step,
                                groups, offset, w);
        return;
    }
    if (has_avx2() && np == 16) {
        gather_groups_16_avx2(out, outStride, src, outBase, srcBase, firstPosition, endPosition, bounds, chunks, first, step,
                              groups, offset, w);
        return;
    }
#endif
    for (int32_t k = 0; k < groups; k++) {
        const intptr_t *b = bounds + (first + (intptr_t)k * step) * (chunks + 1), t = b[0];
        const int32_t taps = (int32_t)(b[chunks] - t);
        gather_portable(out + k * outStride, src, outBase + firstPosition, srcBase + firstPosition, endPosition - firstPosition,
                        offset + t, w + t, taps, np);
    }
}

void csparse_dot(float *gradient, const float *x, const float *dy, const int32_t *xBase, const int32_t *dyBase,
                 int32_t positions, const int32_t *offset, int32_t taps, int32_t np) {
#ifdef CSPARSE_X86
    if (has_avx512() && np == 16) {
        dot_16_avx512(gradient, x, dy, xBase, dyBase, positions, offset, taps);
        return;
    }
    if (has_avx2()) {
        dot_avx2(gradient, x, dy, xBase, dyBase, positions, offset, taps, np);
        return;
    }
#endif
    dot_portable(gradient, x, dy, xBase, dyBase, positions, offset, taps, np);
}

/* How many rows ahead the copy into the batch-inner layout prefetches its sources. */
enum { prefetch_rows_ahead = 4 };

/* One row of `width` positions: lane i of position x from image i's row `line + i·area`, the
 * lanes from n on zero. */
typedef void (*row_to_batch_inner)(float *q, const float *line, int32_t n, int64_t area, int32_t width, int32_t np);

static void row_to_batch_inner_portable(float *q, const float *line, int32_t n, int64_t area, int32_t width, int32_t np) {
    for (int32_t x = 0; x < width; x++, q += np) {
        int32_t i = 0;
        for (; i < n; i++) q[i] = line[i * area + x];
        for (; i < np; i++) q[i] = 0;
    }
}

static void from_batch_inner_portable(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                                      int32_t height, int32_t width, int32_t np, int32_t accumulate) {
    const int64_t area = (int64_t)height * width;
    for (int32_t c = first; c < last; c++) {
        float *d = dst + (int64_t)c * imageStride * area;
        const float *s = src + (int64_t)c * area * np;
        for (int32_t block = 0; block < n; block += 8) {
            const int32_t lanes = n - block < 8 ? n - block : 8;
            for (int64_t position = 0; position < area; position++) {
                const float *q = s + position * np + block;
                float *out = d + (int64_t)block * area + position;
                if (accumulate) {
                    for (int32_t i = 0; i < lanes; i++) out[i * area] += q[i];
                } else {
                    for (int32_t i = 0; i < lanes; i++) out[i * area] = q[i];
                }
            }
        }
    }
}

#ifdef CSPARSE_X86
/* r[i] = row i of an 8×8 block in, column i out. */
__attribute__((target("avx2,fma")))
static inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* The first `count` (0–8) lanes set. */
__attribute__((target("avx2,fma")))
static inline __m256i first_lanes(int32_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The same copy as the portable row, 8 images × 8 positions at a time through an in-register
 * transpose instead of one strided load per float (`np` a multiple of 8). */
__attribute__((target("avx2,fma")))
static void row_to_batch_inner_avx2(float *q, const float *line, int32_t n, int64_t area, int32_t width, int32_t np) {
    const __m256 zero = _mm256_setzero_ps();
    for (int32_t b = 0; b < np; b += 8) {
        const int32_t images = n - b < 0 ? 0 : n - b < 8 ? n - b : 8;
        for (int32_t x = 0; x < width; x += 8) {
            const int32_t count = width - x < 8 ? width - x : 8;
            const __m256i mask = first_lanes(count);
            __m256 r[8];
            for (int32_t i = 0; i < 8; i++) {
                const float *from = line + (int64_t)(b + i) * area + x;
                r[i] = i >= images ? zero : count == 8 ? _mm256_loadu_ps(from) : _mm256_maskload_ps(from, mask);
            }
            transpose8(r);
            for (int32_t j = 0; j < count; j++) _mm256_storeu_ps(q + (int64_t)(x + j) * np + b, r[j]);
        }
    }
}

/* The portable loop's copy (or sum: the same one addition per float) through 8×8 transposes. */
__attribute__((target("avx2,fma")))
static void from_batch_inner_avx2(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                                  int32_t height, int32_t width, int32_t np, int32_t accumulate) {
    const int64_t area = (int64_t)height * width;
    const __m256 zero = _mm256_setzero_ps();
    for (int32_t c = first; c < last; c++) {
        float *d = dst + (int64_t)c * imageStride * area;
        const float *s = src + (int64_t)c * area * np;
        for (int32_t block = 0; block < n; block += 8) {
            const int32_t images = n - block < 8 ? n - block : 8;
            int64_t position = 0;
            /* Sixteen positions a pass where writing: each image's 64 bytes stored back to back,
             * where 32 bytes into eight images' rows in turn stalled on the stores (10–70%
             * more `perf` samples in this copy on the quick preset's 1% masks, AMD EPYC). */
            for (; !accumulate && position + 16 <= area; position += 16) {
                __m256 r[8], u[8];
                for (int32_t j = 0; j < 8; j++) {
                    r[j] = _mm256_loadu_ps(s + (position + j) * np + block);
                    u[j] = _mm256_loadu_ps(s + (position + 8 + j) * np + block);
                }
                transpose8(r);
                transpose8(u);
                for (int32_t i = 0; i < images; i++) {
                    float *out = d + (int64_t)(block + i) * area + position;
                    _mm256_storeu_ps(out, r[i]);
                    _mm256_storeu_ps(out + 8, u[i]);
                }
            }
            for (; position < area; position += 8) {
                const int32_t count = area - position < 8 ? (int32_t)(area - position) : 8;
                const __m256i mask = first_lanes(count);
                __m256 r[8];
                for (int32_t j = 0; j < 8; j++) r[j] = j < count ? _mm256_loadu_ps(s + (position + j) * np + block) : zero;
                transpose8(r);
                for (int32_t i = 0; i < images; i++) {
                    float *out = d + (int64_t)(block + i) * area + position;
                    if (count == 8) {
                        _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), r[i]) : r[i]);
                    } else {
                        _mm256_maskstore_ps(out, mask, accumulate ? _mm256_add_ps(_mm256_maskload_ps(out, mask), r[i]) : r[i]);
                    }
                }
            }
        }
    }
}
#endif

void csparse_to_batch_inner(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                            int32_t height, int32_t width, int32_t halo, int32_t np) {
    row_to_batch_inner copy = row_to_batch_inner_portable;
#ifdef CSPARSE_X86
    if (has_avx2() && np % 8 == 0) copy = row_to_batch_inner_avx2;
#endif
    const int64_t paddedWidth = width + 2 * halo, paddedHeight = height + 2 * halo;
    const int64_t area = (int64_t)height * width, rowFloats = paddedWidth * np;
    for (int32_t c = first; c < last; c++) {
        float *d = dst + (int64_t)c * paddedHeight * rowFloats;
        const float *s = src + (int64_t)c * imageStride * area;
        memset(d, 0, sizeof(float) * halo * rowFloats);
        memset(d + (halo + height) * rowFloats, 0, sizeof(float) * halo * rowFloats);
        for (int32_t y = 0; y < height; y++) {
            /* The n source rows are n streams the hardware prefetchers lose track of: ask for
             * each image's row `prefetch_rows_ahead` on (in the next channel past the plane's
             * end). Loads were most of this copy's time; this took 14–34% off it (`perf`
             * samples of quick-preset epochs at 1% density, AMD EPYC). Writing back, the same
             * for the stores changed nothing. */
            const int32_t next = y + prefetch_rows_ahead;
            const float *ahead = next < height ? s + (int64_t)next * width
                                 : next - height < height && c + 1 < last ? s + (int64_t)imageStride * area + (int64_t)(next - height) * width
                                                                          : NULL;
            if (ahead) {
                for (int32_t i = 0; i < n; i++) {
                    __builtin_prefetch(ahead + (int64_t)i * area, 0, 3);
                    __builtin_prefetch(ahead + (int64_t)i * area + width - 1, 0, 3);
                }
            }
            float *row = d + (y + halo) * rowFloats;
            memset(row, 0, sizeof(float) * halo * np);
            memset(row + (halo + width) * np, 0, sizeof(float) * halo * np);
            copy(row + (int64_t)halo * np, s + (int64_t)y * width, n, area, width, np);
        }
    }
}

void csparse_from_batch_inner(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                              int32_t height, int32_t width, int32_t np, int32_t accumulate) {
#ifdef CSPARSE_X86
    if (has_avx2() && np % 8 == 0) {
        from_batch_inner_avx2(dst, src, first, last, n, imageStride, height, width, np, accumulate);
        return;
    }
#endif
    from_batch_inner_portable(dst, src, first, last, n, imageStride, height, width, np, accumulate);
}
