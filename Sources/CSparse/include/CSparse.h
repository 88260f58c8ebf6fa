#ifndef CSPARSE_H
#define CSPARSE_H
/*
 * The sparse engine's inner loops (Sources/Model/Engines/Sparse drives them). Activations here are
 * "batch-inner": [channel][row][column][lane], `np` lanes per position (a block of the batch
 * rounded up to a multiple of 8, the extra lanes zero). Every index below counts positions; the kernels
 * multiply by `np`.
 *
 * Each function writes each of its outputs from one thread, summing in the order of its
 * arguments, so results do not depend on how callers split the work across threads.
 */
#include <stdint.h>

/* For the groups g = first + k·step, k < groups, whose taps are t in [bounds[g·(chunks+1)],
 * bounds[g·(chunks+1) + chunks]):
 * out_k[outBase[p]][l] = sum over t of w[t] * src[srcBase[p] + offset[t]][l], out_k = out + k·outStride,
 * for every position firstPosition <= p < endPosition and lane l < np (t ascending, one fused
 * multiply-add each, from zero). A group without taps writes zeros. The chunk bounds in between
 * (bounds[g·(chunks+1) + j], j < chunks, ascending) cut each group's taps into runs worked through
 * one after the other for every group, the partial sums kept in `out` between runs: the same
 * order of operations, so the same bits for any chunks. */
void csparse_gather_groups(float *out, int64_t outStride, const float *src, const int32_t *outBase, const int32_t *srcBase,
                           int32_t firstPosition, int32_t endPosition, const intptr_t *bounds, int32_t chunks, int32_t first,
                           int32_t step, int32_t groups, const int32_t *offset, const float *w, int32_t np);

/* gradient[t] = sum over p, l of dy[dyBase[p]][l] * x[xBase[p] + offset[t]][l]. */
void csparse_dot(float *gradient, const float *x, const float *dy, const int32_t *xBase, const int32_t *dyBase,
                 int32_t positions, const int32_t *offset, int32_t taps, int32_t np);

/* Channels [first, last) of n images of src [C][imageStride][H][W] (src points at the first
 * image) into dst [C][H+2h][W+2h][np]: halo and the lanes from n on are zero. */
void csparse_to_batch_inner(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                            int32_t height, int32_t width, int32_t halo, int32_t np);

/* Channels [first, last) of src [C][H][W][np] back into n images of dst [C][imageStride][H][W]
 * (dst points at the first image), written or (when accumulate) added. */
void csparse_from_batch_inner(float *dst, const float *src, int32_t first, int32_t last, int32_t n, int32_t imageStride,
                              int32_t height, int32_t width, int32_t np, int32_t accumulate);

/* 1 when the AVX2+FMA kernels run on this CPU, 0 when the portable ones do. */
int32_t csparse_uses_avx2(void);

#endif
