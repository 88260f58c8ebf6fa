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

// `border_plane` with masked vector copies: rows of at most 32 values took a `memcpy` call each,
// whose start-up cost more than the copy.
__attribute__((target("avx512f"))) static void border_plane_avx512(const float *source, float *p, int height, int width) {
    const int pw = width + 2;
    for (int x = 0; x < pw; x += 16) {
        const __mmask16 lanes = (__mmask16)(pw - x >= 16 ? 0xffff : (1u << (pw - x)) - 1);
        _mm512_mask_storeu_ps(p + x, lanes, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(p + (size_t)(height + 1) * pw + x, lanes, _mm512_setzero_ps());
    }
    for (int r = 0; r < height; r++) {
        float *row = p + (size_t)(r + 1) * pw;
        const float *line = source + (size_t)r * width;
        row[0] = 0;
        for (int x = 0; x < width; x += 16) {
            const __mmask16 lanes = (__mmask16)(width - x >= 16 ? 0xffff : (1u << (width - x)) - 1);
            _mm512_mask_storeu_ps(row + 1 + x, lanes, _mm512_maskz_loadu_ps(lanes, line + x));
        }
        row[width + 1] = 0;
    }
}

// Image `n` of `x` into `pad` as `[c][h + 2][w + 2]` with a zero border.
static void pad_image(const float *x, float *pad, int channels, int batch, int n, int height, int width, int level) {
    const size_t plane = (size_t)(height + 2) * (width + 2);
    const size_t area = (size_t)height * width, channel_stride = (size_t)batch * area;
    for (int c = 0; c < channels; c++) {
        const float *source = x + ((size_t)c * batch + n) * area;
        /* Each channel's plane is a stream of its own, a batch of planes past the last one: ask
         * for the next channel's plane while this one is copied. */
        if (c + 1 < channels)
            for (size_t i = 0; i < area; i += 16) __builtin_prefetch(source + channel_stride + i, 0, 3);
        if (level >= 2) border_plane_avx512(source, pad + c * plane, height, width);
        else border_plane(source, pad + c * plane, height, width);
    }
    memset(pad + channels * plane, 0, sizeof(float) * slack);
}

// Writes (or adds) the `width` valid values of one output row of channel `o` from `out`, or
// stores `max(out·scale + shift (+ residual), 0)`, or `out + (gate > 0 ? gradient : 0)`, when an
// epilogue is given (the rows it reads lie at `offset` in their maps, as the output row in `y`).
static inline void emit(const float *out, float *target, int width, int accumulate, const direct_convolution_epilogue *epilogue,
                        int o, size_t offset) {
    if (epilogue && epilogue->moments) {
        memcpy(target, out, sizeof(float) * width);
    } else if (epilogue && epilogue->gate) {
        const float *gate = epilogue->gate + offset, *gradient = epilogue->gradient + offset;
        for (int x = 0; x < width; x++) target[x] = out[x] + (gate[x] > 0 ? gradient[x] : 0);
    } else if (epilogue) {
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

// `Σ v` and `Σ v²` of one output row added into `moments[0]`, `moments[1]`: each row's sums
// are formed in float, then added in Double, rows in the order the kernels store them (fixed
// by the shapes, never by the threads).
static inline void add_moments(float sum, float squares, double *moments) {
    moments[0] += (double)sum;
    moments[1] += (double)squares;
}
// The AVX2 row kernel: from the stored row, value by value.
#define row_moments_scalar(acc, out, XV, width, moments)                                 \
    do {                                                                                 \
        float sum = 0, squares = 0;                                                      \
        for (int x = 0; x < (width); x++) {                                              \
            sum += (out)[x];                                                             \
            squares += (out)[x] * (out)[x];                                              \
        }                                                                                \
        add_moments(sum, squares, moments);                                              \
    } while (0)
// The AVX-512 row kernel: from the accumulators, lanes past the row's end masked off.
#define row_moments_avx512(acc, out, XV, width, moments)                                                                \
    do {                                                                                                                \
        const __mmask16 last = (__mmask16)((width) - 16 * ((XV) - 1) >= 16 ? 0xffff : (1u << ((width) - 16 * ((XV) - 1))) - 1); \
        const __m512 tail = _mm512_maskz_mov_ps(last, (acc)[(XV) - 1]);                                                  \
        const __m512 sum = (XV) == 2 ? _mm512_add_ps((acc)[0], tail) : tail;                                             \
        const __m512 squares = (XV) == 2 ? _mm512_fmadd_ps(tail, tail, _mm512_mul_ps((acc)[0], (acc)[0])) : _mm512_mul_ps(tail, tail); \
        add_moments(_mm512_reduce_add_ps(sum), _mm512_reduce_add_ps(squares), moments);                                \
    } while (0)

// One output row of `OB` channels from `o0`, `XV` vectors wide. `OB` and `XV` are constants
// at every call site, so after inlining the accumulators live in registers.
#define ROW_KERNEL(NAME, TARGET, VEC, LANES, ZERO, LOAD, BROADCAST, FMA, STORE, MAX_OB, MAX_XV, MOMENTS)                 \
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
            if (epilogue && epilogue->moments)                                                                         \
                MOMENTS(acc[o], out, XV, width, epilogue->moments + 2 * ((size_t)(o0 + o) * batch + n));               \
            emit(out, y + offset, width, accumulate, epilogue, o0 + o, offset);                                        \
        }                                                                                                              \
    }

ROW_KERNEL(row_avx512, "avx512f", __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps,
           _mm512_storeu_ps, 16, 2, row_moments_avx512)
ROW_KERNEL(row_avx2, "avx2,fma", __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps,
           _mm256_storeu_ps, 12, 4, row_moments_scalar)

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

// `packed[b][j][t][l] = w[(16·b + l)·lane_stride + j·other_stride + t]`: 16 channels of one
// weight axis in the lanes, the other axis (`others` channels) outside them.
static void pack_blocks(const float *w, float *packed, int blocks, int others, size_t lane_stride, size_t other_stride) {
    for (int b = 0; b < blocks; b++)
        for (int j = 0; j < others; j++)
            for (int t = 0; t < 9; t++)
                for (int l = 0; l < lanes_per_block; l++)
                    packed[(((size_t)b * others + j) * 9 + t) * lanes_per_block + l] =
                        w[(size_t)(b * lanes_per_block + l) * lane_stride + j * other_stride + t];
}

void direct_convolution_pack(const float *w, float *packed, int in_channels, int out_channels) {
    pack_blocks(w, packed, out_channels / lanes_per_block, in_channels, (size_t)in_channels * 9, 9);
}

// Sixteen vectors of 16 lanes as a 16×16 matrix, transposed in registers: lane `j` of vector
// `i` becomes lane `i` of vector `j`.
__attribute__((target("avx512f"), always_inline)) static inline void transpose_16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

// The lanes of `mask` of `v` (output channel `o`'s values, at `offset` in its map) written to
// `target` as `emit` writes them: added, or through the epilogue, each step rounded apart.
__attribute__((target("avx512f"), always_inline)) static inline void emit_lanes(float *target, __m512 v, __mmask16 mask,
                                                                                  int accumulate,
                                                                                  const direct_convolution_epilogue *epilogue,
                                                                                  int o, size_t offset, size_t map) {
    if (epilogue && epilogue->moments) {
        const __m512 kept = _mm512_maskz_mov_ps(mask, v);
        add_moments(_mm512_reduce_add_ps(kept), _mm512_reduce_add_ps(_mm512_mul_ps(kept, kept)), epilogue->moments + 2 * map);
    } else if (epilogue && epilogue->gate) {
        const __mmask16 open = _mm512_mask_cmp_ps_mask(mask, _mm512_maskz_loadu_ps(mask, epilogue->gate + offset), _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(open, epilogue->gradient + offset));
    } else if (epilogue) {
        v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(epilogue->scale[o])), _mm512_set1_ps(epilogue->shift[o]));
        if (epilogue->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, epilogue->residual + offset));
        // 0 >= v ? 0 : v, as Swift.max(v, 0): NaN passes, −0 becomes +0.
        if (epilogue->residual || epilogue->relu) v = _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ), v);
    } else if (accumulate) {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, target), v);
    }
    _mm512_mask_storeu_ps(target, mask, v);
}

// `ROWS` output rows from `row`, `COLS` columns from `x0`, of `V` blocks of 16 output channels
// from `block`, on maps `width` wide, as `pixels_TAG_COLS_ROWS_V`. The bordered input has rows
// of `PW` floats (an expression of `in_pw`, or a constant where the map's width fixes it) and is
// read at every `STRIDE`-th pixel.
#define PIXEL_KERNEL_AS(TAG, COLS, ROWS, V, STRIDE, PW)                                                                \
    __attribute__((target("avx512f"))) static void pixels_##TAG##_##COLS##_##ROWS##_##V(                               \
        const float *pad, const float *packed, float *y, int in_channels, int batch, int n, int in_height, int in_pw,  \
        int height, int width, int block, int row, int x0, int accumulate, const direct_convolution_epilogue *epilogue) { \
        enum { P = COLS * ROWS };                                                                                      \
        const int pw = PW, plane = (in_height + 2) * pw, area = height * width;                                        \
        __m512 acc[V][P];                                                                                              \
        _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                                 \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < P; p++) acc[v][p] = _mm512_setzero_ps();            \
        for (int c = 0; c < in_channels; c++) {                                                                        \
            const float *image = pad + (size_t)c * plane + (size_t)STRIDE * ((size_t)row * pw + x0);                   \
            const float *weights_c = packed + ((size_t)block * in_channels + c) * 9 * lanes_per_block;                 \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++) {                                           \
                const float *tap = image + (t / 3) * pw + t % 3;                                                       \
                __m512 weights[V];                                                                                     \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                         \
                    weights[v] = _mm512_loadu_ps(weights_c + ((size_t)v * in_channels * 9 + t) * lanes_per_block);     \
                _Pragma("clang loop unroll(full)") for (int p = 0; p < P; p++) {                                       \
                    const __m512 input = _mm512_set1_ps(tap[(p / COLS) * STRIDE * pw + STRIDE * (p % COLS)]);          \
                    _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                     \
                        acc[v][p] = _mm512_fmadd_ps(weights[v], input, acc[v][p]);                                     \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        /* Transposed, each vector holds one output channel's `P` pixels. */                                         \
        const __mmask16 valid = (__mmask16)((1u << COLS) - 1);                                                         \
        for (int v = 0; v < V; v++) {                                                                                  \
            __m512 channels[lanes_per_block];                                                                          \
            _Pragma("clang loop unroll(full)") for (int p = 0; p < lanes_per_block; p++)                               \
                channels[p] = p < P ? acc[v][p] : _mm512_setzero_ps();                                                 \
            transpose_16x16(channels);                                                                                 \
            for (int l = 0; l < lanes_per_block; l++) {                                                                \
                const int o = (block + v) * lanes_per_block + l;                                                       \
                _Pragma("clang loop unroll(full)") for (int r = 0; r < ROWS; r++) {                                    \
                    const size_t at = ((size_t)o * batch + n) * area + (size_t)(row + r) * width + x0;                 \
                    const __m512 line = r == 0 ? channels[l]                                                          \
                        : _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), \
                                                                 _mm512_set1_epi32(r * COLS)), channels[l]);          \
                    emit_lanes(y + at, line, valid, accumulate, epilogue, o, at, (size_t)o * batch + n);               \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

// Stride 1 with `COLS` the map's width, or stride 2 on rows as wide as the input's.
#define PIXEL_KERNEL(COLS, ROWS, V, STRIDE) PIXEL_KERNEL_AS(STRIDE, COLS, ROWS, V, STRIDE, STRIDE == 1 ? COLS + 2 : in_pw)

// One block pair (`V` 2) or block (`V` 1) over tiles of `ROWS` rows and `COLS` columns, single
// rows for what the tiles leave, on the kernels tagged `TAG`.
#define PIXEL_TILES(TAG, WIDTH, COLS, ROWS, V)                                                                          \
    for (int x0 = 0; x0 < WIDTH; x0 += COLS) {                                                                         \
        int row = 0;                                                                                                   \
        for (; row + ROWS <= height; row += ROWS)                                                                      \
            pixels_##TAG##_##COLS##_##ROWS##_##V(pad, packed, y, in_channels, batch, n, in_height, pw, height, WIDTH,  \
                                                 block, row, x0, accumulate, epilogue);                                \
        for (; row < height; row++)                                                                                    \
            pixels_##TAG##_##COLS##_1_##V(pad, packed, y, in_channels, batch, n, in_height, pw, height, WIDTH, block,   \
                                          row, x0, accumulate, epilogue);                                              \
    }

// Pairs of 16-channel blocks over tiles of `ROWS2` rows, then a last single block over tiles
// of `ROWS1` rows; columns in tiles of `COLS`; as `image_pixels_TAG_WIDTH`.
#define PIXEL_IMAGE(TAG, WIDTH, COLS, ROWS2, ROWS1)                                                                     \
    static void image_pixels_##TAG##_##WIDTH(const float *pad, const float *packed, float *y, int in_channels,         \
                                             int out_channels, int batch, int n, int in_height, int in_width,           \
                                             int height, int accumulate, const direct_convolution_epilogue *epilogue) { \
        const int blocks = out_channels / lanes_per_block, pw = in_width + 2;                                          \
        int block = 0;                                                                                                 \
        for (; block + 2 <= blocks; block += 2) PIXEL_TILES(TAG, WIDTH, COLS, ROWS2, 2)                               \
        if (block < blocks) PIXEL_TILES(TAG, WIDTH, COLS, ROWS1, 1)                                                    \
    }

// The kernels `PIXEL_IMAGE` calls: for 8 and 7 columns a block pair one row at a time and a
// single block two rows at a time; for 4 columns two rows and four.
#define PIXEL_KERNELS_8_7_AS(TAG, COLS, STRIDE, PW) \
    PIXEL_KERNEL_AS(TAG, COLS, 1, 2, STRIDE, PW) PIXEL_KERNEL_AS(TAG, COLS, 2, 1, STRIDE, PW) PIXEL_KERNEL_AS(TAG, COLS, 1, 1, STRIDE, PW)
#define PIXEL_KERNELS_8_7(COLS, STRIDE) PIXEL_KERNELS_8_7_AS(STRIDE, COLS, STRIDE, STRIDE == 1 ? COLS + 2 : in_pw)
#define PIXEL_KERNELS_4(STRIDE) \
    PIXEL_KERNEL(4, 2, 2, STRIDE) PIXEL_KERNEL(4, 1, 2, STRIDE) PIXEL_KERNEL(4, 4, 1, STRIDE) PIXEL_KERNEL(4, 1, 1, STRIDE)

PIXEL_KERNELS_8_7(8, 1)
PIXEL_IMAGE(1, 8, 8, 1, 2)
PIXEL_KERNELS_8_7(7, 1)
PIXEL_IMAGE(1, 7, 7, 1, 2)
PIXEL_KERNELS_4(1)
PIXEL_IMAGE(1, 4, 4, 2, 4)
// Stride 1 on maps 16 and 14 columns wide in two tiles of 8 and 7 (tag `t`: bordered rows of 18
// and 16 floats), ResNet18's second stage on 32- and 28-pixel images, where the row kernel took
// 1.3x the time per FLOP of the pixel kernels.
PIXEL_KERNELS_8_7_AS(t, 8, 1, 18)
PIXEL_IMAGE(t, 16, 8, 1, 2)
PIXEL_KERNELS_8_7_AS(t, 7, 1, 16)
PIXEL_IMAGE(t, 14, 7, 1, 2)
// The first stage on 28-pixel images in four tiles of 7 (tag `f`: bordered rows of 30 floats),
// where the row kernel's two vectors left 4 of 32 lanes idle: 9% less time in `perf` samples of
// the quick preset's training (AMD EPYC). On 32 columns the row kernel fills its lanes and
// loads fewer values per multiply-add than the pixel kernels; it stays.
PIXEL_KERNELS_8_7_AS(f, 7, 1, 30)
PIXEL_IMAGE(f, 28, 7, 1, 2)
// Stride 2: outputs 16 and 14 columns wide in two tiles, 8, 7 and 4 in one.
PIXEL_KERNELS_8_7(8, 2)
PIXEL_IMAGE(2, 16, 8, 1, 2)
PIXEL_IMAGE(2, 8, 8, 1, 2)
PIXEL_KERNELS_8_7(7, 2)
PIXEL_IMAGE(2, 14, 7, 1, 2)
PIXEL_IMAGE(2, 7, 7, 1, 2)
PIXEL_KERNELS_4(2)
PIXEL_IMAGE(2, 4, 4, 2, 4)

int direct_convolution_packs(int width, int stride) {
    const int out = (width - 1) / stride + 1;
    return stride == 1 ? out == 28 || out == 16 || out == 14 || out == 8 || out == 7 || out == 4
                       : stride == 2 && (out == 16 || out == 14 || out == 8 || out == 7 || out == 4);
}

void direct_convolution_3x3(const float *x, const float *w, const float *packed, float *y, int in_channels,
                            int out_channels, int batch, int height, int width, int stride, int first_image, int end_image,
                            float *scratch, int accumulate, const direct_convolution_epilogue *epilogue, int level) {
    const int out_height = (height - 1) / stride + 1, out_width = (width - 1) / stride + 1;
    for (int n = first_image; n < end_image; n++) {
        pad_image(x, scratch, in_channels, batch, n, height, width, level);
        if (stride == 2) {
#define STRIDED(WIDTH) image_pixels_2_##WIDTH(scratch, packed, y, in_channels, out_channels, batch, n, height, width, out_height, \
                                              accumulate, epilogue)
            switch (out_width) {
            case 16: STRIDED(16); break;
            case 14: STRIDED(14); break;
            case 8: STRIDED(8); break;
            case 7: STRIDED(7); break;
            default: STRIDED(4); break;
            }
#undef STRIDED
        } else if (level >= 2) {
            // Full blocks of 16 channels on the pixel kernels, the rest on the row kernel.
            const int blocked = packed && direct_convolution_packs(width, 1) ? out_channels / lanes_per_block * lanes_per_block : 0;
            if (blocked > 0) {
#define PIXELS(TAG, WIDTH) image_pixels_##TAG##_##WIDTH(scratch, packed, y, in_channels, out_channels, batch, n, height, width, height, \
                                             accumulate, epilogue)
                if (width == 28) PIXELS(f, 28);
                else if (width == 16) PIXELS(t, 16);
                else if (width == 14) PIXELS(t, 14);
                else if (width == 8) PIXELS(1, 8);
                else if (width == 7) PIXELS(1, 7);
                else PIXELS(1, 4);
#undef PIXELS
            }
            if (blocked < out_channels)
                image_avx512(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate, epilogue, blocked);
        } else {
            image_avx2(scratch, w, y, in_channels, out_channels, batch, n, height, width, accumulate, epilogue);
        }
    }
}

// ---- Input gradient of a stride-2 layer, 16 input channels per vector (AVX-512) -----------------
//
// `∂L/∂x[c][iy][ix] = Σ_{o,i,j} w[o][c][i][j] · ∂L/∂y[o][oy][ox]` over `iy = 2·oy − 1 + i` and
// `ix = 2·ox − 1 + j`, without col2im. The lanes are 16 input channels and the registers two
// rows of `2·Q` input-gradient pixels. Those take every tap from `Q + 1` columns of two rows of
// `∂L/∂Y`: each gradient value is broadcast once and meets its output channel's nine weight
// vectors at the pixels of the tile it reaches (which, the tile's parity fixes at compile time).
// `∂L/∂Y` is first copied with zero rows and columns past its end, so tiles read no bounds.

enum { gradient_pairs = 4 };


static int bordered_gradient_rows(int height) { return (height + 1) / 2 + 1; }
static int bordered_gradient_columns(int width) { return (width + 2 * gradient_pairs - 1) / (2 * gradient_pairs) * gradient_pairs + 1; }

size_t direct_convolution_stride2_gradient_scratch_floats(int out_channels, int height, int width) {
    return (size_t)out_channels * bordered_gradient_rows(height) * bordered_gradient_columns(width) + slack;
}

void direct_convolution_pack_transposed(const float *w, float *packed, int in_channels, int out_channels) {
    pack_blocks(w, packed, in_channels / lanes_per_block, out_channels, 9, (size_t)in_channels * 9);
}

__attribute__((target("avx512f"))) static void stride2_gradient_tile(
    const float *bordered, const float *packed, float *dx, int out_channels, int batch, int n, int height, int width,
    int rows, int columns, int block, int r, int s0, int accumulate) {
    enum { Q = gradient_pairs, X = 2 * Q };
    __m512 acc[2][X];
    _Pragma("clang loop unroll(full)") for (int i = 0; i < 2; i++)
        _Pragma("clang loop unroll(full)") for (int x = 0; x < X; x++) acc[i][x] = _mm512_setzero_ps();
    for (int o = 0; o < out_channels; o++) {
        const float *g = bordered + ((size_t)o * rows + r) * columns + s0;
        const float *weights_o = packed + ((size_t)block * out_channels + o) * 9 * lanes_per_block;
        __m512 weights[9];
        _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++) weights[t] = _mm512_loadu_ps(weights_o + t * lanes_per_block);
        _Pragma("clang loop unroll(full)") for (int dr = 0; dr < 2; dr++)
            _Pragma("clang loop unroll(full)") for (int dc = 0; dc <= Q; dc++) {
                const __m512 value = _mm512_set1_ps(g[(size_t)dr * columns + dc]);
                _Pragma("clang loop unroll(full)") for (int i = 0; i < 3; i++)
                    _Pragma("clang loop unroll(full)") for (int j = 0; j < 3; j++) {
                        const int iy = 2 * dr - 1 + i, ix = 2 * dc - 1 + j;
                        if (iy >= 0 && iy < 2 && ix >= 0 && ix < X) acc[iy][ix] = _mm512_fmadd_ps(weights[i * 3 + j], value, acc[iy][ix]);
                    }
            }
    }
    // Transposed, each vector holds one channel's two rows of `X` pixels.
    __m512 channels[2 * X];
    _Pragma("clang loop unroll(full)") for (int p = 0; p < 2 * X; p++) channels[p] = acc[p / X][p % X];
    transpose_16x16(channels);
    const int count = width - 2 * s0 < X ? width - 2 * s0 : X;
    const __mmask16 valid = (__mmask16)((1u << count) - 1);
    const int second = 2 * r + 1 < height;
    for (int l = 0; l < lanes_per_block; l++) {
        float *top = dx + (((size_t)(block * lanes_per_block + l) * batch + n) * height + 2 * r) * width + 2 * s0;
        emit_lanes(top, channels[l], valid, accumulate, NULL, 0, 0, 0);
        if (second) emit_lanes(top + width, _mm512_shuffle_f32x4(channels[l], channels[l], 0xee), valid, accumulate, NULL, 0, 0, 0);
    }
}

void direct_convolution_3x3_stride2_input_gradient(const float *dy, const float *packed, float *dx, int in_channels,
                                                   int out_channels, int batch, int height, int width, int first_image,
                                                   int end_image, float *scratch, int accumulate) {
    const int out_height = (height + 1) / 2, out_width = (width + 1) / 2;
    const int rows = bordered_gradient_rows(height), columns = bordered_gradient_columns(width);
    for (int n = first_image; n < end_image; n++) {
        memset(scratch, 0, sizeof(float) * direct_convolution_stride2_gradient_scratch_floats(out_channels, height, width));
        for (int o = 0; o < out_channels; o++)
            for (int y = 0; y < out_height; y++)
                memcpy(scratch + ((size_t)o * rows + y) * columns, dy + (((size_t)o * batch + n) * out_height + y) * out_width,
                       sizeof(float) * out_width);
        for (int block = 0; block < in_channels / lanes_per_block; block++)
            for (int r = 0; r < out_height; r++)
                for (int s0 = 0; 2 * s0 < width; s0 += gradient_pairs)
                    stride2_gradient_tile(scratch, packed, dx, out_channels, batch, n, height, width, rows, columns, block, r, s0,
                                          accumulate);
    }
}

// ---- Weight gradient (AVX-512 only: on AVX2 it lost to im2col + GEMM) ----------------------
//
// Both weight gradients read the saved input as it is: a tap that falls outside the image is
// a masked-off lane or a row of zeros, never a bordered copy. The copy of the whole batch that
// these kernels once read cost a write and a read of the layer's input per step (4% of width
// 16's training step), for values the masks give for free.

enum { gradient_lanes = 16, images_per_block = 8 };

size_t direct_convolution_weight_gradient_scratch_floats(int in_channels, int out_channels) {
    return (size_t)out_channels * in_channels * 9 * gradient_lanes;
}

#define AVX512_ATTRIBUTES __attribute__((target("avx512f"), always_inline)) static inline
AVX512_ATTRIBUTES __m512 v512_zero(void) { return _mm512_setzero_ps(); }
AVX512_ATTRIBUTES __m512 v512_load(const float *p) { return _mm512_loadu_ps(p); }
AVX512_ATTRIBUTES __m512 v512_load_first(const float *p, int count) {
    return _mm512_maskz_loadu_ps((__mmask16)((1u << count) - 1), p);
}
AVX512_ATTRIBUTES __m512 v512_load_masked(const float *p, __mmask16 lanes) { return _mm512_maskz_loadu_ps(lanes, p); }
AVX512_ATTRIBUTES __m512 v512_fma(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
AVX512_ATTRIBUTES __m512 v512_add(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }
AVX512_ATTRIBUTES void v512_store(float *p, __m512 v) { _mm512_storeu_ps(p, v); }

// The lanes `l` of a vector starting at column `first` (≥ −1) with `0 ≤ first + l < width`.
static inline unsigned columns_inside(int first, int width) {
    unsigned lanes = first < 0 ? 0xfffeu : 0xffffu;
    const int room = width - first;
    if (room < gradient_lanes) lanes &= room <= 0 ? 0 : (1u << room) - 1;
    return lanes;
}

// One block of `OB` output channels against one kernel row `ki` of input channel `c`, over the
// images of one block: the three taps of the row in `OB × 3` accumulators, added into the
// weights' partial-sum vectors at the end of the block. The output rows whose input row
// `row + ki − 1` lies outside the image are skipped: there every product is zero.
#define GRADIENT_KERNEL(NAME, TARGET, P, VEC, MAX_OB)                                                                   \
    __attribute__((target(TARGET), always_inline)) static inline void NAME(                                            \
        const float *dy, const float *x, float *partials, int in_channels, int batch, int height, int width, int o0,   \
        int c, int ki, int first_image, int end_image, const int OB, const int XV) {                                   \
        const int last = width - (XV - 1) * gradient_lanes;                                                            \
        const int first_row = ki == 0 ? 1 : 0, end_row = ki == 2 ? height - 1 : height;                                \
        __mmask16 inside[2][3];                                                                                        \
        for (int v = 0; v < XV; v++)                                                                                   \
            for (int kj = 0; kj < 3; kj++) inside[v][kj] = (__mmask16)columns_inside(v * gradient_lanes + kj - 1, width); \
        VEC acc[MAX_OB][3];                                                                                            \
        for (int o = 0; o < OB; o++)                                                                                   \
            for (int kj = 0; kj < 3; kj++) acc[o][kj] = P##_zero();                                                    \
        for (int n = first_image; n < end_image; n++) {                                                                \
            const float *image = x + ((size_t)c * batch + n) * height * width;                                         \
            const float *gradient = dy + (((size_t)o0 * batch + n) * height) * width;                                  \
            for (int row = first_row; row < end_row; row++) {                                                          \
                const float *line = image + (ptrdiff_t)(row + ki - 1) * width;                                         \
                for (int v = 0; v < XV; v++) {                                                                         \
                    const int column = v * gradient_lanes;                                                             \
                    VEC in[3];                                                                                         \
                    for (int kj = 0; kj < 3; kj++) in[kj] = P##_load_masked(line + column + kj - 1, inside[v][kj]);    \
                    for (int o = 0; o < OB; o++) {                                                                     \
                        const float *g = gradient + (size_t)o * batch * height * width + (size_t)row * width + column; \
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
    KERNEL(dy, x, partials, in_channels, batch, height, width, o0, c, ki, first_image, end_image, OB, XV)
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
    const float *dy, const float *x, float *partials, int in_channels, int batch, int height, int width,
    int first_output, int end_output, int first_image, int end_image) {
    GRADIENT_BLOCKS(gradient_avx512, 8)
}

void direct_convolution_3x3_weight_gradient(const float *x, const float *dy, float *dw, int in_channels, int out_channels,
                                            int batch, int height, int width, int first_output, int end_output, float *scratch) {
    float *partials = scratch;
    const size_t per_output = (size_t)in_channels * 9 * gradient_lanes;
    memset(partials + first_output * per_output, 0, sizeof(float) * (end_output - first_output) * per_output);
    // Image blocks keep one block's rows of `dy` and of the input in cache while
    // every kernel row of every input channel passes over them.
    for (int first_image = 0; first_image < batch; first_image += images_per_block) {
        const int end_image = first_image + images_per_block < batch ? first_image + images_per_block : batch;
        gradient_block_avx512(dy, x, partials, in_channels, batch, height, width, first_output, end_output,
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
// channels' gradients at a pixel; each input channel's nine taps are broadcast from the input
// image at constant offsets, and `9 × V` accumulators (one per tap and 16-channel block) sum
// over the pixels of a block of images before they are added to the weights' partial sums.
// Each weight is summed by one thread, over image blocks, images, rows and columns in that
// order, so the bits do not depend on how the blocks are shared out.

size_t direct_convolution_channel_gradient_scratch_floats(int in_channels, int out_channels, int batch, int height,
                                                          int width, int stride) {
    const size_t out_area = (size_t)((height - 1) / stride + 1) * ((width - 1) / stride + 1);
    return (size_t)out_channels * batch * out_area + (size_t)out_channels * in_channels * 9;
}

// Blocks of 16 output channels × 16 pixels, transposed in registers (`out_channels` is a multiple
// of 16 wherever the channel-vectorised weight gradient runs).
__attribute__((target("avx512f"))) void direct_convolution_transpose_gradient(const float *dy, float *scratch, int out_channels,
                                                                              int batch, int height, int width, int stride,
                                                                              int first_image, int end_image) {
    const size_t area = (size_t)((height - 1) / stride + 1) * ((width - 1) / stride + 1);
    float *transposed = scratch;
    for (int n = first_image; n < end_image; n++)
        for (int o0 = 0; o0 < out_channels; o0 += lanes_per_block)
            for (size_t p0 = 0; p0 < area; p0 += lanes_per_block) {
                const int count = area - p0 < lanes_per_block ? (int)(area - p0) : lanes_per_block;
                const __mmask16 valid = (__mmask16)((1u << count) - 1);
                __m512 block[lanes_per_block];
                for (int o = 0; o < lanes_per_block; o++)
                    block[o] = _mm512_maskz_loadu_ps(valid, dy + ((size_t)(o0 + o) * batch + n) * area + p0);
                transpose_16x16(block);
                for (int p = 0; p < count; p++) _mm512_storeu_ps(transposed + ((size_t)n * area + p0 + p) * out_channels + o0, block[p]);
            }
}

// What an input row above or below the image reads: every tap there multiplies a zero.
static const float zero_row[64];

// `WIDTH` is the output's width. Tap `t` of output pixel (`row`, `col`) reads input row
// `STRIDE·row + t / 3 − 1` (the zero row outside the image) at column `STRIDE·col + t % 3 − 1`.
// Left of the image that column is known when the kernel is compiled, and the tap is left out;
// right of it likewise at stride 1, and at stride 2 only on odd input widths, where it reads zero.
#define CHANNEL_GRADIENT_KERNEL(WIDTH, V, STRIDE)                                                                       \
    __attribute__((target("avx512f"))) static void channel_gradient_##STRIDE##_##WIDTH##_##V(                          \
        const float *x, const float *transposed, float *partials, int in_channels, int out_channels, int batch,        \
        int in_height, int in_width, int height, int c, int block, int first_image, int end_image) {                   \
        const int plane = in_height * in_width, area = height * WIDTH, odd = in_width < STRIDE * WIDTH;                 \
        {                                                                                                              \
            __m512 acc[9][V];                                                                                          \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++)                                             \
                _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++) acc[t][v] = _mm512_setzero_ps();        \
            for (int n = first_image; n < end_image; n++) {                                                            \
                const float *image = x + ((size_t)c * batch + n) * plane;                                              \
                const float *gradient = transposed + (size_t)n * area * out_channels + (size_t)block * lanes_per_block; \
                for (int row = 0; row < height; row++) {                                                               \
                    const float *lines[3];                                                                             \
                    for (int i = 0; i < 3; i++) {                                                                      \
                        const int r = STRIDE * row + i - 1;                                                            \
                        lines[i] = r >= 0 && r < in_height ? image + (size_t)r * in_width : zero_row;                  \
                    }                                                                                                  \
                    const float *g = gradient + (size_t)row * WIDTH * out_channels;                                    \
                    _Pragma("clang loop unroll(full)") for (int col = 0; col < WIDTH; col++) {                         \
                        __m512 d[V];                                                                                   \
                        _Pragma("clang loop unroll(full)") for (int v = 0; v < V; v++)                                 \
                            d[v] = _mm512_loadu_ps(g + (size_t)col * out_channels + v * lanes_per_block);              \
                        _Pragma("clang loop unroll(full)") for (int t = 0; t < 9; t++) {                               \
                            const int column = STRIDE * col + t % 3 - 1;                                               \
                            if (column < 0 || (STRIDE == 1 && column >= WIDTH)) continue;                              \
                            const int edge = STRIDE == 2 && column == STRIDE * WIDTH - 1;                              \
                            const __m512 input = _mm512_set1_ps(edge && odd ? 0.0f : lines[t / 3][column]);            \
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

#define CHANNEL_GRADIENT_KERNELS(WIDTH, STRIDE) CHANNEL_GRADIENT_KERNEL(WIDTH, 2, STRIDE) CHANNEL_GRADIENT_KERNEL(WIDTH, 1, STRIDE)
CHANNEL_GRADIENT_KERNELS(16, 1)
CHANNEL_GRADIENT_KERNELS(14, 1)
CHANNEL_GRADIENT_KERNELS(8, 1)
CHANNEL_GRADIENT_KERNELS(7, 1)
CHANNEL_GRADIENT_KERNELS(4, 1)
CHANNEL_GRADIENT_KERNELS(16, 2)
CHANNEL_GRADIENT_KERNELS(14, 2)
CHANNEL_GRADIENT_KERNELS(8, 2)
CHANNEL_GRADIENT_KERNELS(7, 2)
CHANNEL_GRADIENT_KERNELS(4, 2)
CHANNEL_GRADIENT_KERNELS(28, 1)
CHANNEL_GRADIENT_KERNELS(32, 1)

int direct_convolution_channel_gradient_covers(int width, int stride) {
    const int out = (width - 1) / stride + 1;
    return (stride == 1 || stride == 2) && (out == 4 || out == 7 || out == 8 || out == 14 || out == 16) ||
           stride == 1 && (out == 28 || out == 32);
}

void direct_convolution_3x3_channel_weight_gradient(const float *x, float *dw, int in_channels, int out_channels, int batch,
                                                    int height, int width, int stride, int first_channel, int end_channel,
                                                    float *scratch) {
    const int out_height = (height - 1) / stride + 1, out_width = (width - 1) / stride + 1;
    const int blocks = out_channels / lanes_per_block;
    const float *transposed = scratch;
    float *partials = scratch + (size_t)out_channels * batch * out_height * out_width;
    const size_t per_channel = (size_t)9 * lanes_per_block;
    for (int block = 0; block < blocks; block++)
        memset(partials + ((size_t)block * in_channels + first_channel) * per_channel, 0,
               sizeof(float) * (end_channel - first_channel) * per_channel);
    // Image blocks outermost: one block's transposed gradients stay in cache while every input
    // channel passes over them.
    for (int first_image = 0; first_image < batch; first_image += images_per_block) {
        const int end_image = first_image + images_per_block < batch ? first_image + images_per_block : batch;
        for (int block = 0; block < blocks;) {
            const int pair = block + 2 <= blocks;
            for (int c = first_channel; c < end_channel; c++) {
#define CHANNEL_GRADIENT(WIDTH, STRIDE)                                                                            \
    if (pair) channel_gradient_##STRIDE##_##WIDTH##_2(x, transposed, partials, in_channels, out_channels, batch, height,     \
                                                      width, out_height, c, block, first_image, end_image);         \
    else channel_gradient_##STRIDE##_##WIDTH##_1(x, transposed, partials, in_channels, out_channels, batch, height,        \
                                                 width, out_height, c, block, first_image, end_image);
#define CHANNEL_GRADIENT_WIDTHS(STRIDE)                  \
    switch (out_width) {                                 \
    case 16: CHANNEL_GRADIENT(16, STRIDE) break;         \
    case 14: CHANNEL_GRADIENT(14, STRIDE) break;         \
    case 8: CHANNEL_GRADIENT(8, STRIDE) break;           \
    case 7: CHANNEL_GRADIENT(7, STRIDE) break;           \
    default: CHANNEL_GRADIENT(4, STRIDE) break;          \
    }
                if (stride == 1 && out_width == 28) {
                    CHANNEL_GRADIENT(28, 1)
                } else if (stride == 1 && out_width == 32) {
                    CHANNEL_GRADIENT(32, 1)
                } else if (stride == 1) {
                    CHANNEL_GRADIENT_WIDTHS(1)
                } else {
                    CHANNEL_GRADIENT_WIDTHS(2)
                }
#undef CHANNEL_GRADIENT_WIDTHS
#undef CHANNEL_GRADIENT
            }
            block += pair ? 2 : 1;
        }
    }
    for (int block = 0; block < blocks; block++)
        for (int c = first_channel; c < end_channel; c++)
            for (int t = 0; t < 9; t++)
                for (int l = 0; l < lanes_per_block; l++) {
                    const int o = block * lanes_per_block + l;
                    dw[((size_t)o * in_channels + c) * 9 + t] = partials[(((size_t)block * in_channels + c) * 9 + t) * lanes_per_block + l];
                }
}
