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

/// A 3×3, stride-1, padding-1 convolution of the images `first_image..<end_image`, channel-major
/// (`x[c][n][h][w]`, `y[o][n][h][w]`, weights `w[o][c][3][3]`), without im2col: each image is
/// copied once into `scratch` with a zero border, then every output row is summed in vector
/// registers. `y` is overwritten, or added to when `accumulate` is nonzero (the sum is formed
/// first, as GEMM with beta 1 does). `width` is at most 32; `level` is
/// `direct_convolution_level()`'s answer (≥ 1).
void direct_convolution_3x3(const float *x, const float *w, float *y, int in_channels, int out_channels,
                            int batch, int height, int width, int first_image, int end_image,
                            float *scratch, int accumulate, int level);

/// Floats of scratch the weight gradient needs: every image of `x` with a zero border
/// (`[c][n][h + 2][w + 2]`), then one vector of partial sums per weight.
size_t direct_convolution_weight_gradient_scratch_floats(int in_channels, int out_channels, int batch, int height, int width);

/// Copies the images `first_image..<end_image` of `x` (`[c][n][h][w]`) into the bordered layout
/// at the start of the weight gradient's scratch.
void direct_convolution_border_images(const float *x, float *scratch, int in_channels, int batch, int height, int width,
                                      int first_image, int end_image);

/// `∂L/∂w[o][c][i][j] = Σ_{n,y,x} dy[o][n][y][x] · x[c][n][y + i − 1][x + j − 1]` for the output
/// channels `first_output..<end_output` of a 3×3, stride-1, padding-1 convolution, from the
/// bordered images in `scratch` (after `direct_convolution_border_images` for all of them).
/// Needs AVX-512F (level 2). Sums run over images in fixed blocks and over 16 vector lanes in a
/// fixed order, so the bits do not depend on how output channels are shared out.
void direct_convolution_3x3_weight_gradient(const float *dy, float *dw, int in_channels, int out_channels, int batch,
                                            int height, int width, int first_output, int end_output, float *scratch);

#endif
