#ifndef DIRECT_CONVOLUTION_H
#define DIRECT_CONVOLUTION_H

#include <stddef.h>

/// The vector instructions the direct convolution runs on this CPU: 0 none (callers keep
/// im2col + GEMM), 1 AVX2 with FMA, 2 AVX-512F. Both paths sum every output in the same order
/// (input channel, kernel row, kernel column, one fused multiply-add each), so they give the
/// same bits.
int direct_convolution_level(void);

/// Floats of scratch one thread needs for `channels` input planes of `height`×`width`: the
/// zero-padded copy of one image, plus slack for the last vector's over-read.
size_t direct_convolution_scratch_floats(int channels, int height, int width);

/// What replaces the plain store of each output value `v` of channel `o`: the evaluation-mode
/// BatchNorm that follows the convolution, `v·scale[o] + shift[o]`, then, with `residual`
/// (a map of the output's shape), `max(… + residual, 0)`, else `max(…, 0)` when `relu` is
/// nonzero. Each multiply and add is rounded apart, in that order.
///
/// With `gate` (maps of the output's shape, as `gradient`; the other fields unused) it is
/// `v + (gate > 0 ? gradient : 0)` instead: a residual block's input gradient stored with the
/// identity shortcut's gradient through the block's final ReLU already added.
///
/// With `moments` (the other fields unused) `v` is stored as it is, and `Σ v` and `Σ v²` over
/// each output plane are added into `moments[2·(o·batch + n)]` and the Double after it (zero
/// them first): the training BatchNorm's batch statistics, summed as the rows leave the
/// registers instead of in a pass of their own. Each row's two sums are formed in float and
/// added in Double, rows in an order fixed by the shapes, so the bits do not depend on the
/// threads (they do on the vector level).
typedef struct {
    const float *scale;
    const float *shift;
    const float *residual;
    int relu;
    const float *gate;
    const float *gradient;
    double *moments;
} direct_convolution_epilogue;

/// A 3×3, padding-1 convolution of the images `first_image..<end_image`, channel-major
/// (`x[c][n][height][width]`, `y[o][n][·][·]`, weights `w[o][c][3][3]`), without im2col: each
/// image is copied once into `scratch` with a zero border, then every output row is summed in
/// vector registers. `y` is overwritten, or added to when `accumulate` is nonzero (the sum is
/// formed first, as GEMM with beta 1 does); with a non-null `epilogue` (and `accumulate` zero)
/// each value passes through it instead. `width` is at most 32; `level` is
/// `direct_convolution_level()`'s answer (≥ 1).
///
/// Stride 1 runs at any level. At level 2, on maps where `direct_convolution_packs(width, 1)`,
/// `packed` (from `direct_convolution_pack`, or null) puts the full blocks of 16 output channels
/// in the vector lanes and whole rows of pixels in the registers: the same bits as the row
/// kernel, 1.2–2× faster on maps of 4 to 16 columns, 1.1× on 28. Stride 2 runs on those pixel
/// kernels only: level 2, `direct_convolution_packs(width, 2)`, `packed` given and `out_channels`
/// a multiple of 16.
void direct_convolution_3x3(const float *x, const float *w, const float *packed, float *y, int in_channels,
                            int out_channels, int batch, int height, int width, int stride, int first_image, int end_image,
                            float *scratch, int accumulate, const direct_convolution_epilogue *epilogue, int level);
/// Whether inputs `width` columns wide have pixel kernels at `stride`: outputs of 28, 16, 14, 8,
/// 7 and 4 columns at stride 1 (ResNet18's stages 2 to 4 on 32- and 28-pixel images, and its
/// first on 28; 28 in four tiles, 16 and 14 in two) and of 16, 14, 8, 7 and 4 at stride 2 (its
/// three downsampling 3×3 layers).
int direct_convolution_packs(int width, int stride);
/// Floats `direct_convolution_pack` writes: the full blocks of 16 output channels' weights.
size_t direct_convolution_packed_floats(int in_channels, int out_channels);
/// `w[o][c][3][3]` as `packed[o / 16][c][3 · 3][o % 16]` for the full blocks of 16 output channels.
void direct_convolution_pack(const float *w, float *packed, int in_channels, int out_channels);

/// `w[o][c][3][3]` as `packed[c / 16][o][3 · 3][c % 16]` for the full blocks of 16 input channels
/// (`direct_convolution_packed_floats(out_channels, in_channels)` floats): the stride-2 input
/// gradient's weights.
void direct_convolution_pack_transposed(const float *w, float *packed, int in_channels, int out_channels);
/// Floats of scratch one thread needs for the stride-2 input gradient: one image of `∂L/∂Y`
/// with zero rows and columns past its end.
size_t direct_convolution_stride2_gradient_scratch_floats(int out_channels, int height, int width);
/// `∂L/∂x` of a 3×3, stride-2, padding-1 convolution for the images `first_image..<end_image`
/// (`height`×`width` the input's extents, at most 32 each): written to `dx`, or added to it when
/// `accumulate` is nonzero. `packed` is from `direct_convolution_pack_transposed`, `in_channels`
/// a multiple of 16. Needs AVX-512F (level 2). Each value is summed over output channels, then
/// taps, in a fixed order, so the bits do not depend on how images are shared out.
void direct_convolution_3x3_stride2_input_gradient(const float *dy, const float *packed, float *dx, int in_channels,
                                                   int out_channels, int batch, int height, int width, int first_image,
                                                   int end_image, float *scratch, int accumulate);

/// Floats of scratch the weight gradient needs: one vector of partial sums per weight.
size_t direct_convolution_weight_gradient_scratch_floats(int in_channels, int out_channels);

/// `∂L/∂w[o][c][i][j] = Σ_{n,y,x} dy[o][n][y][x] · x[c][n][y + i − 1][x + j − 1]` for the output
/// channels `first_output..<end_output` of a 3×3, stride-1, padding-1 convolution of `x`
/// (`[c][n][height][width]`, read in place: taps outside the image are masked off), `width` at
/// most 32. Needs AVX-512F (level 2). Sums run over images in fixed blocks and over 16 vector
/// lanes in a fixed order, so the bits do not depend on how output channels are shared out.
void direct_convolution_3x3_weight_gradient(const float *x, const float *dy, float *dw, int in_channels, int out_channels,
                                            int batch, int height, int width, int first_output, int end_output, float *scratch);

/// Floats of scratch the channel-vectorised weight gradient needs: `∂L/∂Y` transposed to
/// `[n][pixel][o]`, and one partial sum per weight. `height` and `width` are the input's extents.
size_t direct_convolution_channel_gradient_scratch_floats(int in_channels, int out_channels, int batch, int height, int width,
                                                          int stride);
/// Writes `dy[o][n][pixel]` of the images `first_image..<end_image` transposed into the scratch.
void direct_convolution_transpose_gradient(const float *dy, float *scratch, int out_channels, int batch, int height, int width,
                                           int stride, int first_image, int end_image);
/// Whether the channel-vectorised weight gradient has kernels for inputs `width` columns wide
/// at `stride` (1 or 2): outputs of 4, 7, 8, 14 and 16 columns (stages 2 to 4 of ResNet18 on
/// 32- and 28-pixel images, and its downsampling 3×3 layers), and at stride 1 also 28 and 32
/// (the first stage).
int direct_convolution_channel_gradient_covers(int width, int stride);
/// `∂L/∂w[o][c]` of the input channels `first_channel..<end_channel` (every output channel) of a
/// 3×3, padding-1 convolution of `x` (read in place) at `stride`, on inputs where
/// `direct_convolution_channel_gradient_covers(width, stride)`, from the scratch after
/// `direct_convolution_transpose_gradient` for every image. `out_channels` must be a multiple
/// of 16. Needs AVX-512F (level 2). Callers share the input channels out over threads: a
/// 16-channel layer has one block of output channels but 16 input channels.
void direct_convolution_3x3_channel_weight_gradient(const float *x, float *dw, int in_channels, int out_channels, int batch,
                                                    int height, int width, int stride, int first_channel, int end_channel,
                                                    float *scratch);
#endif
