// A 3×3, stride-1 convolution without im2col, for the narrow early layers where copying
// nine shifted planes costs more than the arithmetic (docs/model.md, "Direct convolution").
//
// Written in C rather than Swift because Swift compiles for baseline x86-64 (SSE2, no FMA)
// and has no per-function target attribute; here each path is compiled for its instruction
// set and chosen at run time. One output row of `OB` output channels is held in `OB × XV`
// vector registers while every input channel and kernel tap is added in; the input image is
// first copied with a one-pixel zero border, so the loops have no bounds checks.

#include "DirectConvolution.h"

#include <immintrin.h>
#include <string.h>

int direct_convolution_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

// The last vector of a row may read up to one vector past the row's end.
static const size_t slack = 64;

size_t direct_convolution_scratch_floats(int channels, int height, int width) {
    return (size_t)channels * (size_t)(height + 2) * (size_t)(width + 2) + slack;
}

// One `height`×`width` plane into `p` as `(height + 2)`×`(width + 2)` with a zero border.
static void border_plane(const float *source, float *p, int height, int width) {
    const int pw = width + 2;
    memset(p, 0, sizeof(float) * pw);
    memset(p + (size_t)(height + 1) * pw, 0, sizeof(float) * pw);
    for (int r = 0; r < height; r++) {
        float *row = p + (size_t)(r + 1) * pw;
        row[0] = 0;
        memcpy(row + 1, source + (size_t)r * width, sizeof(float) * width);
        row[width + 1] = 0;
    }
}

// Image `n` of `x` into `pad` as `[c][h + 2][w + 2]` with a zero border.
static void pad_image(const float *x, float *pad, int channels, int batch, int n, int height, int width) {
    const size_t plane = (size_t)(height + 2) * (width + 2);
    for (int c = 0; c < channels; c++) {
        border_plane(x + ((size_t)c * batch + n) * height * width, pad + c * plane, height, width);
    }
    memset(pad + channels * plane, 0, sizeof(float) * slack);
}

// Writes (or adds) the `width` valid values of one output row from `out`.
static inline void emit(const float *out, float *target, int width, int accumulate) {
    if (accumulate) {
        for (int x = 0; x < width; x++) target[x] += out[x];
    } else {
        memcpy(target, out, sizeof(float) * width);
    }
}

// One output row of `OB` channels from `o0`, `XV` vectors wide. `OB` and `XV` are constants
// at every call site, so after inlining the accumulators live in registers.
#define ROW_KERNEL(NAME, TARGET, VEC, LANES, ZERO, LOAD, BROADCAST, FMA, STORE, MAX_OB, MAX_XV)                          \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                                            \
        const float *pad, const float *w, float *y, int in_channels, int batch, int n, int height, int width, int row,  \
        int o0, int accumulate, const int OB, const int XV) {                                                          \
        const int pw = width + 2, plane = (height + 2) * pw;                                                           \
        VEC acc[MAX_OB][MAX_XV];                                                                                       \
        for (int o = 0; o < OB; o++)                                                                                   \
            for (int v = 0; v < XV; v++) acc[o][v] = ZERO();                                                           \
        for (int c = 0; c < in_channels; c++) {                                                                        \
            const float *wc = w + ((size_t)o0 * in_channels + c) * 9;                                                  \
            for (int ki = 0; ki < 3; ki++) {                                                                           \
                const float *line = pad + (size_t)c * plane + (size_t)(row + ki) * pw;                                 \
                for (int kj = 0; kj < 3; kj++) {                                                                       \
                    VEC in[MAX_XV];                                                                                    \
                    for (int v = 0; v < XV; v++) in[v] = LOAD(line + kj + LANES * v);                                  \
                    for (int o = 0; o < OB; o++) {                                                                     \
                        VEC b = BROADCAST(wc[(size_t)o * in_channels * 9 + ki * 3 + kj]);                              \
                        for (int v = 0; v < XV; v++) acc[o][v] = FMA(b, in[v], acc[o][v]);                            \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int o = 0; o < OB; o++) {                                                                                 \
            float out[MAX_XV * LANES];                                                                                 \
            for (int v = 0; v < XV; v++) STORE(out + LANES * v, acc[o][v]);                                            \
            emit(out, y + (((size_t)(o0 + o) * batch + n) * height + row) * width, width, accumulate);                \
        }                                                                                                              \
    }

ROW_KERNEL(row_avx512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps,
           _mm512_storeu_ps, 16, 2)
ROW_KERNEL(row_avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps,
           _mm256_storeu_ps, 12, 4)

// Every output channel of one row: the widest block of channels the registers hold, then
// blocks of 4 and single channels for the rest (any channel count works).
#define ROW(KERNEL, OB, XV) KERNEL(pad, w, y, in_channels, batch, n, height, width, row, o0, accumulate, OB, XV)
#define CHANNEL_BLOCKS(KERNEL, WIDE, XV)                                      \
    for (o0 = 0; o0 + (WIDE) <= out_channels; o0 += (WIDE)) ROW(KERNEL, WIDE, XV); \
    for (; o0 + 4 <= out_channels; o0 += 4) ROW(KERNEL, 4, XV);             \
    for (; o0 < out_channels; o0++) ROW(KERNEL, 1, XV);

__attribute__((target("avx512f"))) static void image_avx512(const float *pad, const float *w, float *y, int in_channels,
                                                             int out_channels, int batch, int n, int height, int width,
                                                             int accumulate) {
    for (int row = 0; row < height; row++) {
        int o0;
        if (width <= 16) {
            CHANNEL_BLOCKS(row_avx512, 16, 1)
        } else {
            CHANNEL_BLOCKS(row_avx512, 8, 2)
        }
    }
}

__attribute__((target("avx2,fma"))) static void image_avx2(const float *pad, const float *w, float *y, int in_channels,
                                                            int out_channels, int batch, int n, int height, int width,
                                                            int accumulate) {
    for (int row = 0; row < height; row++) {
        int o0;
        if (width <= 8) {
            CHANNEL_BLOCKS(row_avx2, 12, 1)
        } else if (width <= 16) {
            CHANNEL_BLOCKS(row_avx2, 6, 2)
        } else if (width <= 24) {
            CHANNEL_BLOCKS(row_avx2, 4, 3)
        } else {
            CHANNEL_BLOCKS(row_avx2, 3, 4)
        }
    }
}

void direct_convolution_3x3(const float *x, const float *w, float *y, int in_channels, int out_channels, int batch,
                            int height, int width, int first_image, int end_image, float *scratch, int accumulate,
                            int level) {
    for (int n = first_image; n < end_image; n++) {
        pad_image(x, scratch, in_channels, batch, n, height, width);
        if (level >= 2) {
            image_avx512(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate);
        } else {
            image_avx2(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate);
        }
    }
}

// ---- Weight gradient (AVX-512 only: on AVX2 it lost to im2col + GEMM) ----------------------

enum { gradient_lanes = 16, images_per_block = 8 };

size_t direct_convolution_weight_gradient_scratch_floats(int in_channels, int out_channels, int batch, int height,
                                                         int width) {
    return (size_t)in_channels * batch * (height + 2) * (width + 2) + slack +
           (size_t)out_channels * in_channels * 9 * gradient_lanes;
}

void direct_convolution_border_images(const float *x, float *scratch, int in_channels, int batch, int height, int width,
                                      int first_image, int end_image) {
    const size_t plane = (size_t)(height + 2) * (width + 2);
    for (int c = 0; c < in_channels; c++) {
        for (int n = first_image; n < end_image; n++) {
            const size_t image = (size_t)c * batch + n;
            border_plane(x + image * height * width, scratch + image * plane, height, width);
        }
    }
    if (end_image == batch) memset(scratch + (size_t)in_channels * batch * plane, 0, sizeof(float) * slack);
}

#define AVX512_ATTRIBUTES __attribute__((target("avx512f"), always_inline)) static inline
AVX512_ATTRIBUTES __m512 v512_zero(void) { return _mm512_setzero_ps(); }
AVX512_ATTRIBUTES __m512 v512_load(const float *p) { return _mm512_loadu_ps(p); }
AVX512_ATTRIBUTES __m512 v512_load_first(const float *p, int count) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), p);
}
AVX512_ATTRIBUTES __m512 v512_fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
AVX512_ATTRIBUTES __m512 v512_add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
AVX512_ATTRIBUTES void v512_store(float *p, __m512 v) { _mm512_storeu_ps(p, v); }

// One block of `OB` output channels against one kernel row `ki` of input channel `c`, over the
// images of one block: the three taps of the row in `OB × 3` accumulators, added into the
// weights' partial-sum vectors at the end of the block.
#define GRADIENT_KERNEL(NAME, TARGET, P, VEC, MAX_OB)                                                                   \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                                            \
        const float *dy, const float *bordered, float *partials, int in_channels, int batch, int height, int width,     \
        int o0, int c, int ki, int first_image, int end_image, const int OB, const int XV) {                           \
        const int pw = width + 2, plane = (height + 2) * pw, last = width - (XV - 1) * gradient_lanes;                 \
        VEC acc[MAX_OB][3];                                                                                            \
        for (int o = 0; o < OB; o++)                                                                                   \
            for (int kj = 0; kj < 3; kj++) acc[o][kj] = P##_zero();                                                    \
        for (int n = first_image; n < end_image; n++) {                                                                \
            const float *image = bordered + ((size_t)c * batch + n) * plane + (size_t)ki * pw;                         \
            const float *gradient = dy + (((size_t)o0 * batch + n) * height) * width;                                  \
            for (int row = 0; row < height; row++) {                                                                   \
                const float *line = image + (size_t)row * pw;                                                          \
                for (int v = 0; v < XV; v++) {                                                                         \
                    const int x = v * gradient_lanes;                                                                  \
                    VEC in[3];                                                                                         \
                    for (int kj = 0; kj < 3; kj++) in[kj] = P##_load(line + x + kj);                                   \
                    for (int o = 0; o < OB; o++) {                                                                     \
                        const float *g = gradient + (size_t)o * batch * height * width + (size_t)row * width + x;      \
                        VEC d = v < XV - 1 || last == gradient_lanes ? P##_load(g) : P##_load_first(g, last);          \
                        for (int kj = 0; kj < 3; kj++) acc[o][kj] = P##_fma(d, in[kj], acc[o][kj]);                    \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int o = 0; o < OB; o++)                                                                                   \
            for (int kj = 0; kj < 3; kj++) {                                                                           \
                float *partial = partials + ((((size_t)(o0 + o) * in_channels + c) * 3 + ki) * 3 + kj) * gradient_lanes; \
                P##_store(partial, P##_add(P##_load(partial), acc[o][kj]));                                            \
            }                                                                                                          \
    }

GRADIENT_KERNEL(gradient_avx512, "avx512f", v512, __m512, 8)

#define GRADIENT(KERNEL, OB, XV) \
    KERNEL(dy, bordered, partials, in_channels, batch, height, width, o0, c, ki, first_image, end_image, OB, XV)
#define GRADIENT_OUTPUTS(KERNEL, WIDE, XV)                                                     \
    {                                                                                          \
        int o0 = first_output;                                                                 \
        for (; o0 + (WIDE) <= end_output; o0 += (WIDE)) GRADIENT(KERNEL, WIDE, XV);            \
        for (; o0 + 4 <= end_output; o0 += 4) GRADIENT(KERNEL, 4, XV);                         \
        for (; o0 < end_output; o0++) GRADIENT(KERNEL, 1, XV);                                 \
    }
// Rows of at most 16 columns take one vector, wider ones (up to 32) two.
#define GRADIENT_BLOCKS(KERNEL, WIDE)                                                          \
    for (int c = 0; c < in_channels; c++)                                                      \
        for (int ki = 0; ki < 3; ki++) {                                                       \
            if (width <= gradient_lanes) GRADIENT_OUTPUTS(KERNEL, WIDE, 1)                     \
            else GRADIENT_OUTPUTS(KERNEL, WIDE, 2)                                             \
        }

__attribute__((target("avx512f"))) static void gradient_block_avx512(
    const float *dy, const float *bordered, float *partials, int in_channels, int batch, int height, int width,
    int first_output, int end_output, int first_image, int end_image) {
    GRADIENT_BLOCKS(gradient_avx512, 8)
}

void direct_convolution_3x3_weight_gradient(const float *dy, float *dw, int in_channels, int out_channels, int batch,
                                            int height, int width, int first_output, int end_output, float *scratch) {
    const float *bordered = scratch;
    float *partials = scratch + (size_t)in_channels * batch * (height + 2) * (width + 2) + slack;
    const size_t per_output = (size_t)in_channels * 9 * gradient_lanes;
    memset(partials + first_output * per_output, 0, sizeof(float) * (end_output - first_output) * per_output);
    // Image blocks keep one block's rows of `dy` and of the bordered input in cache while
    // every kernel row of every input channel passes over them.
    for (int first_image = 0; first_image < batch; first_image += images_per_block) {
        const int end_image = first_image + images_per_block < batch ? first_image + images_per_block : batch;
        gradient_block_avx512(dy, bordered, partials, in_channels, batch, height, width, first_output, end_output,
                              first_image, end_image);
    }
    for (int o = first_output; o < end_output; o++) {
        for (size_t weight = 0; weight < (size_t)in_channels * 9; weight++) {
            const float *lanes = partials + (o * (size_t)in_channels * 9 + weight) * gradient_lanes;
            float sum = 0;
            for (int lane = 0; lane < gradient_lanes; lane++) sum += lanes[lane];
            dw[o * (size_t)in_channels * 9 + weight] = sum;
        }
    }
}
