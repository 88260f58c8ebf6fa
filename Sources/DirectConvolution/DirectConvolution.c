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

// The epilogue rounds each multiply and add apart, as the Swift BatchNorm it stands in for.
#pragma STDC FP_CONTRACT OFF

int direct_convolution_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

// The last vector of a row may read up to one vector past the row's end.
static const size_t slack = 64;
// Output channels per vector in the pixel kernels.
enum { lanes_per_block = 16 };

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

// Writes (or adds) the `width` valid values of one output row of channel `o` from `out`, or
// stores `max(out·scale + shift (+ residual), 0)` when an epilogue is given (the residual row
// lies at `offset` in its map, as the output row in `y`).
static inline void emit(const float *out, float *target, int width, int accumulate, const direct_convolution_epilogue *epilogue,
                        int o, size_t offset) {
    if (epilogue) {
        const float scale = epilogue->scale[o], shift = epilogue->shift[o];
        if (epilogue->residual) {
            const float *add = epilogue->residual + offset;
            for (int x = 0; x < width; x++) {
                float v = out[x] * scale;
                v = v + shift;
                v = v + add[x];
                target[x] = 0 >= v ? 0 : v;  // Swift.max(v, 0): NaN passes, −0 becomes +0
            }
        } else {
            for (int x = 0; x < width; x++) {
                float v = out[x] * scale;
                v = v + shift;
                target[x] = epilogue->relu && 0 >= v ? 0 : v;
            }
        }
    } else if (accumulate) {
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
        int o0, int accumulate, const direct_convolution_epilogue *epilogue, const int OB, const int XV) {             \
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
            const size_t offset = (((size_t)(o0 + o) * batch + n) * height + row) * width;                            \
            emit(out, y + offset, width, accumulate, epilogue, o0 + o, offset);                                        \
        }                                                                                                              \
    }

ROW_KERNEL(row_avx512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps,
           _mm512_storeu_ps, 16, 2)
ROW_KERNEL(row_avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps,
           _mm256_storeu_ps, 12, 4)

// Every output channel of one row: the widest block of channels the registers hold, then
// blocks of 4 and single channels for the rest (any channel count works).
#define ROW(KERNEL, OB, XV) KERNEL(pad, w, y, in_channels, batch, n, height, width, row, o0, accumulate, epilogue, OB, XV)
#define CHANNEL_BLOCKS(KERNEL, WIDE, XV)                                      \
    for (o0 = first_output; o0 + (WIDE) <= out_channels; o0 += (WIDE)) ROW(KERNEL, WIDE, XV); \
    for (; o0 + 4 <= out_channels; o0 += 4) ROW(KERNEL, 4, XV);             \
    for (; o0 < out_channels; o0++) ROW(KERNEL, 1, XV);

__attribute__((target("avx512f"))) static void image_avx512(const float *pad, const float *w, float *y, int in_channels,
                                                             int out_channels, int batch, int n, int height, int width,
                                                             int accumulate, const direct_convolution_epilogue *epilogue,
                                                             int first_output) {
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
                                                            int accumulate, const direct_convolution_epilogue *epilogue) {
    const int first_output = 0;
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

// ---- Sixteen output channels per vector (AVX-512), for maps of 4, 7 or 8 columns ----------------
//
// The row kernel above puts a row's columns in the vector lanes: on maps of 8 columns or fewer
// half the lanes or more idle. Here the lanes are 16 output channels and the registers hold
// `ROWS` whole output rows of one image (`WIDTH` pixels each, a constant, so every input
// value's address is a constant offset) for `V` blocks of 16 channels: per input channel and
// tap, `V` weight vectors and `ROWS × WIDTH` broadcast input values make `V × ROWS × WIDTH`
// fused multiply-adds. Each output is still summed over (input channel, kernel row, kernel
// column) from zero, one fused multiply-add each, exactly as the row kernel sums it: the two
// give the same bits.

size_t direct_convolution_packed_floats(int in_channels, int out_channels) {
    return (size_t)(out_channels / lanes_per_block) * lanes_per_block * in_channels * 9;
}

void direct_convolution_pack(const float *w, float *packed, int in_channels, int out_channels) {
    const int blocks = out_channels / lanes_per_block;
    for (int b = 0; b < blocks; b++)
        for (int c = 0; c < in_channels; c++)
            for (int t = 0; t < 9; t++)
                for (int l = 0; l < lanes_per_block; l++) {
                    const int o = b * lanes_per_block + l;
                    packed[(((size_t)b * in_channels + c) * 9 + t) * lanes_per_block + l] = w[((size_t)o * in_channels + c) * 9 + t];
                }
}

#define PIXEL_KERNEL(WIDTH, ROWS, V)                                                                                    \
    __attribute__((target("avx512f"))) static void pixels_##WIDTH##_##ROWS##_##V(                                      \
        const float *pad, const float *packed, float *y, int in_channels, int batch, int n, int height, int block,      \
        int row, int accumulate, const direct_convolution_epilogue *epilogue) {                                        \
        enum { P = WIDTH * ROWS, pw = WIDTH + 2 };                                                                     \
        const int plane = (height + 2) * pw, area = height * WIDTH;                                                    \
        __m512 acc[V][P];                                                                                              \
        _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                                 \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < P; p++) acc[v][p] = _mm512_setzero_ps();            \
        for (int c = 0; c < in_channels; c++) {                                                                        \
            const float *image = pad + (size_t)c * plane + (size_t)row * pw;                                           \
            const float *weights_c = packed + ((size_t)block * in_channels + c) * 9 * lanes_per_block;                 \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++) {                                           \
                const float *tap = image + (t / 3) * pw + t % 3;                                                       \
                __m512 weights[V];                                                                                     \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                         \
                    weights[v] = _mm512_loadu_ps(weights_c + ((size_t)v * in_channels * 9 + t) * lanes_per_block);     \
                _Pragma("clang loop unroll(full)") for (int p = 0; p < P; p++) {                                       \
                    const __m512 input = _mm512_set1_ps(tap[(p / WIDTH) * pw + p % WIDTH]);                            \
                    _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                     \
                        acc[v][p] = _mm512_fmadd_ps(weights[v], input, acc[v][p]);                                     \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        for (int v = 0; v < V; v++) {                                                                                  \
            float sums[P][lanes_per_block], values[P];                                                                 \
            for (int p = 0; p < P; p++) _mm512_storeu_ps(sums[p], acc[v][p]);                                          \
            for (int l = 0; l < lanes_per_block; l++) {                                                                \
                const int o = (block + v) * lanes_per_block + l;                                                       \
                for (int p = 0; p < P; p++) values[p] = sums[p][l];                                                    \
                const size_t at = ((size_t)o * batch + n) * area + (size_t)row * WIDTH;                                \
                emit(values, y + at, P, accumulate, epilogue, o, at);                                                  \
            }                                                                                                          \
        }                                                                                                              \
    }

// Pairs of 16-channel blocks over tiles of `ROWS2` rows, then a last single block over tiles
// of `ROWS1` rows; single rows for what the tiles leave.
#define PIXEL_IMAGE(WIDTH, ROWS2, ROWS1)                                                                                \
    static void image_pixels_##WIDTH(const float *pad, const float *packed, float *y, int in_channels, int out_channels, \
                                     int batch, int n, int height, int accumulate,                                      \
                                     const direct_convolution_epilogue *epilogue) {                                     \
        const int blocks = out_channels / lanes_per_block;                                                             \
        int block = 0;                                                                                                 \
        for (; block + 2 <= blocks; block += 2) {                                                                      \
            int row = 0;                                                                                               \
            for (; row + ROWS2 <= height; row += ROWS2)                                                                \
                pixels_##WIDTH##_##ROWS2##_2(pad, packed, y, in_channels, batch, n, height, block, row, accumulate, epilogue); \
            for (; row < height; row++)                                                                                \
                pixels_##WIDTH##_1_2(pad, packed, y, in_channels, batch, n, height, block, row, accumulate, epilogue);  \
        }                                                                                                              \
        if (block < blocks) {                                                                                          \
            int row = 0;                                                                                               \
            for (; row + ROWS1 <= height; row += ROWS1)                                                                \
                pixels_##WIDTH##_##ROWS1##_1(pad, packed, y, in_channels, batch, n, height, block, row, accumulate, epilogue); \
            for (; row < height; row++)                                                                                \
                pixels_##WIDTH##_1_1(pad, packed, y, in_channels, batch, n, height, block, row, accumulate, epilogue);  \
        }                                                                                                              \
    }

PIXEL_KERNEL(8, 1, 2)
PIXEL_KERNEL(8, 2, 1)
PIXEL_KERNEL(8, 1, 1)
PIXEL_IMAGE(8, 1, 2)
PIXEL_KERNEL(7, 1, 2)
PIXEL_KERNEL(7, 2, 1)
PIXEL_KERNEL(7, 1, 1)
PIXEL_IMAGE(7, 1, 2)
PIXEL_KERNEL(4, 2, 2)
PIXEL_KERNEL(4, 1, 2)
PIXEL_KERNEL(4, 4, 1)
PIXEL_KERNEL(4, 1, 1)
PIXEL_IMAGE(4, 2, 4)

int direct_convolution_packs(int width) { return width == 8 || width == 7 || width == 4; }

void direct_convolution_3x3(const float *x, const float *w, const float *packed, float *y, int in_channels,
                            int out_channels, int batch, int height, int width, int first_image, int end_image,
                            float *scratch, int accumulate, const direct_convolution_epilogue *epilogue, int level) {
    for (int n = first_image; n < end_image; n++) {
        pad_image(x, scratch, in_channels, batch, n, height, width);
        if (level >= 2) {
            // Full blocks of 16 channels on the pixel kernels, the rest on the row kernel.
            const int blocked = packed && direct_convolution_packs(width) ? out_channels / lanes_per_block * lanes_per_block : 0;
            if (blocked > 0) {
                if (width == 8) image_pixels_8(scratch, packed, y, in_channels, out_channels, batch, n, height, accumulate, epilogue);
                else if (width == 7) image_pixels_7(scratch, packed, y, in_channels, out_channels, batch, n, height, accumulate, epilogue);
                else image_pixels_4(scratch, packed, y, in_channels, out_channels, batch, n, height, accumulate, epilogue);
            }
            if (blocked < out_channels)
                image_avx512(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate, epilogue, blocked);
        } else {
            image_avx2(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate, epilogue);
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

// ---- Weight gradient with 16 output channels per vector (AVX-512), maps of 4–16 columns -------
//
// For width 16's stages 2 to 4, where the row-vectorised weight gradient above would idle
// lanes or lose to GEMM: `∂L/∂Y` is first transposed to `[n][pixel][o]`, so one vector load brings 16 output
// channels' gradients at a pixel; each input channel's nine taps are broadcast from the bordered
// image at constant offsets, and `9 × V` accumulators (one per tap and 16-channel block) sum
// over the pixels of a block of images before they are added to the weights' partial sums.
// Each weight is summed by one thread, over image blocks, images, rows and columns in that
// order, so the bits do not depend on how the blocks are shared out.

size_t direct_convolution_channel_gradient_scratch_floats(int in_channels, int out_channels, int batch, int height,
                                                          int width) {
    return (size_t)in_channels * batch * (height + 2) * (width + 2) + slack + (size_t)out_channels * batch * height * width +
           (size_t)out_channels * in_channels * 9;
}

void direct_convolution_transpose_gradient(const float *dy, float *scratch, int in_channels, int out_channels, int batch,
                                           int height, int width, int first_image, int end_image) {
    const size_t area = (size_t)height * width;
    float *transposed = scratch + (size_t)in_channels * batch * (height + 2) * (width + 2) + slack;
    for (int n = first_image; n < end_image; n++)
        for (int o = 0; o < out_channels; o++) {
            const float *source = dy + ((size_t)o * batch + n) * area;
            float *target = transposed + (size_t)n * area * out_channels + o;
            for (size_t p = 0; p < area; p++) target[p * out_channels] = source[p];
        }
}

#define CHANNEL_GRADIENT_KERNEL(WIDTH, V)                                                                               \
    __attribute__((target("avx512f"))) static void channel_gradient_##WIDTH##_##V(                                     \
        const float *bordered, const float *transposed, float *partials, int in_channels, int out_channels, int batch,  \
        int height, int c, int block, int first_image, int end_image) {                                                \
        enum { pw = WIDTH + 2 };                                                                                       \
        const int plane = (height + 2) * pw, area = height * WIDTH;                                                    \
        {                                                                                                              \
            __m512 acc[9][V];                                                                                          \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++)                                             \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++) acc[t][v] = _mm512_setzero_ps();        \
            for (int n = first_image; n < end_image; n++) {                                                            \
                const float *image = bordered + ((size_t)c * batch + n) * plane;                                       \
                const float *gradient = transposed + (size_t)n * area * out_channels + (size_t)block * lanes_per_block; \
                for (int row = 0; row < height; row++) {                                                               \
                    const float *line = image + (size_t)row * pw;                                                      \
                    const float *g = gradient + (size_t)row * WIDTH * out_channels;                                    \
                    _Pragma("clang loop unroll(full)") for (int col = 0; col < WIDTH; col++) {                         \
                        __m512 d[V];                                                                                   \
                        _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                 \
                            d[v] = _mm512_loadu_ps(g + (size_t)col * out_channels + v * lanes_per_block);              \
                        _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++) {                               \
                            const __m512 input = _mm512_set1_ps(line[(t / 3) * pw + col + t % 3]);                     \
                            _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                             \
                                acc[t][v] = _mm512_fmadd_ps(d[v], input, acc[t][v]);                                   \
                        }                                                                                              \
                    }                                                                                                  \
                }                                                                                                      \
            }                                                                                                          \
            for (int v = 0; v < V; v++)                                                                                \
                for (int t = 0; t < 9; t++) {                                                                          \
                    float *partial = partials + (((size_t)(block + v) * in_channels + c) * 9 + t) * lanes_per_block;   \
                    _mm512_storeu_ps(partial, _mm512_add_ps(_mm512_loadu_ps(partial), acc[t][v]));                     \
                }                                                                                                      \
        }                                                                                                              \
    }

CHANNEL_GRADIENT_KERNEL(8, 2)
CHANNEL_GRADIENT_KERNEL(8, 1)
CHANNEL_GRADIENT_KERNEL(7, 2)
CHANNEL_GRADIENT_KERNEL(7, 1)
CHANNEL_GRADIENT_KERNEL(4, 2)
CHANNEL_GRADIENT_KERNEL(4, 1)
CHANNEL_GRADIENT_KERNEL(16, 2)
CHANNEL_GRADIENT_KERNEL(16, 1)
CHANNEL_GRADIENT_KERNEL(14, 2)
CHANNEL_GRADIENT_KERNEL(14, 1)

int direct_convolution_channel_gradient_covers(int width) {
    return width == 4 || width == 7 || width == 8 || width == 14 || width == 16;
}

void direct_convolution_3x3_channel_weight_gradient(float *dw, int in_channels, int out_channels, int batch, int height,
                                                    int width, int first_block, int end_block, float *scratch) {
    const float *bordered = scratch;
    const float *transposed = scratch + (size_t)in_channels * batch * (height + 2) * (width + 2) + slack;
    float *partials = (float *)transposed + (size_t)out_channels * batch * height * width;
    const size_t per_block = (size_t)in_channels * 9 * lanes_per_block;
    memset(partials + first_block * per_block, 0, sizeof(float) * (end_block - first_block) * per_block);
    // Image blocks outermost: one block's transposed gradients stay in cache while every input
    // channel passes over them.
    for (int first_image = 0; first_image < batch; first_image += images_per_block) {
        const int end_image = first_image + images_per_block < batch ? first_image + images_per_block : batch;
        for (int block = first_block; block < end_block;) {
            const int pair = block + 2 <= end_block;
            for (int c = 0; c < in_channels; c++) {
#define CHANNEL_GRADIENT(WIDTH)                                                                                    \
    if (pair) channel_gradient_##WIDTH##_2(bordered, transposed, partials, in_channels, out_channels, batch, height, c, block, \
                                           first_image, end_image);                                                \
    else channel_gradient_##WIDTH##_1(bordered, transposed, partials, in_channels, out_channels, batch, height, c, block, \
                                      first_image, end_image);
                switch (width) {
                case 16: CHANNEL_GRADIENT(16) break;
                case 14: CHANNEL_GRADIENT(14) break;
                case 8: CHANNEL_GRADIENT(8) break;
                case 7: CHANNEL_GRADIENT(7) break;
                default: CHANNEL_GRADIENT(4) break;
                }
#undef CHANNEL_GRADIENT
            }
            block += pair ? 2 : 1;
        }
    }
    for (int block = first_block; block < end_block; block++)
        for (int c = 0; c < in_channels; c++)
            for (int t = 0; t < 9; t++)
                for (int l = 0; l < lanes_per_block; l++) {
                    const int o = block * lanes_per_block + l;
                    dw[((size_t)o * in_channels + c) * 9 + t] = partials[(((size_t)block * in_channels + c) * 9 + t) * lanes_per_block + l];
                }
}
