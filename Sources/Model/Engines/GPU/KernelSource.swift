/// The CUDA C of PruneSweep's own kernels, compiled at run time by NVRTC for the device's
/// `sm_XY`. Every kernel mirrors a CPU loop of `Sources/Model` (named beside it) and is
/// checked against it; reductions run in a fixed order so a step is deterministic.
///
/// Element-wise kernels take one thread per element; counts fit in `int` for every shape the
/// presets use (batch 512 × 64 channels × 32 × 32 = 33.5M).
enum KernelSource {
    /// The names `GPUKernels` looks up in the compiled module.
    static let names = [
        "augment", "relu_forward", "add_relu_forward", "relu_backward", "add_into",
        "avgpool_forward", "avgpool_backward", "bias_add", "bias_grad",
        "softmax_cross_entropy", "accumulate_metrics", "sgd_update", "advance",
    ]

    static let text = #"""
typedef unsigned char u8;

// BatchAssembler.assemble: per image (plan = index, crop row, crop column, flip), zero-padded
// random crop in pixel space, then (pixel / 255 - mean) / std as pixel * scale + shift. The
// explicit roundings keep the compiler from fusing into an FMA, so pixels equal the CPU's.
// The epoch's plans are uploaded at once; *step picks this batch's (batchStride images each).
extern "C" __global__ void augment(const u8* pixels, const int* labels, const int* plan, const int* step, int batchStride,
                                   int n, int c, int h, int w, int padding, const float* scale, const float* shift,
                                   float* out, int* outLabels) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int total = n * c * h * w;
    if (i >= total) return;
    int x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, image = i / (w * h * c);
    const int* p = plan + 4 * ((long)(*step) * batchStride + image);
    int sy = y + p[1] - padding;
    int sx = (p[3] ? w - 1 - x : x) + p[2] - padding;
    float value = shift[ch];
    if (sy >= 0 && sy < h && sx >= 0 && sx < w) {
        float pixel = (float)pixels[((long)p[0] * c + ch) * h * w + sy * w + sx];
        value = __fadd_rn(__fmul_rn(pixel, scale[ch]), shift[ch]);
    }
    out[i] = value;
    if (ch == 0 && y == 0 && x == 0) outLabels[image] = labels[p[0]];
}

// Swift.max(v, 0) exactly, as the CPU's ReLUs compute it: `0 >= v ? 0 : v`, so NaN stays NaN
// (a diverging run fails alike on both devices) and -0 becomes +0.
__device__ __forceinline__ float relu(float v) { return 0.0f >= v ? 0.0f : v; }

// ReLU after the first BatchNorm of a block (and the stem), in place.
extern "C" __global__ void relu_forward(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = relu(x[i]);
}

// BatchNorm2d.forward(residual:)'s sum: a block's output relu(bn2 + shortcut).
extern "C" __global__ void add_relu_forward(const float* a, const float* b, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = relu(__fadd_rn(a[i], b[i]));
}

// The gradient through a ReLU whose output was y: dx = dy where y > 0. dx may alias dy.
extern "C" __global__ void relu_backward(const float* dy, const float* y, float* dx, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// The residual sum's backward: the skip path's gradient added to the main path's.
extern "C" __global__ void add_into(float* dst, const float* src, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] += src[i];
}

// GlobalAveragePool on NCHW: one thread per (image, channel), summing its plane in order.
extern "C" __global__ void avgpool_forward(const float* x, float* y, int planes, int area) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= planes) return;
    const float* p = x + (long)i * area;
    float sum = 0.0f;
    for (int k = 0; k < area; k++) sum += p[k];
    y[i] = sum / (float)area;
}

extern "C" __global__ void avgpool_backward(const float* dy, float* dx, int planes, int area) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < planes * area) dx[i] = dy[i / area] / (float)area;
}

// Linear's bias on [N, K] logits, and its gradient: one thread per class, summing images in order.
extern "C" __global__ void bias_add(float* y, const float* bias, int n, int k) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n * k) y[i] += bias[i % k];
}

extern "C" __global__ void bias_grad(const float* dy, float* db, int n, int k) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= k) return;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += dy[i * k + j];
    db[j] = sum;
}

// CrossEntropy.forward: per image, the loss and top-1 hit in double as on the CPU, and
// d loss / d logits = (softmax - onehot) / n (skipped when dlogits is null: evaluation).
extern "C" __global__ void softmax_cross_entropy(const float* logits, const int* labels, int n, int k,
                                                 float* dlogits, float* loss, int* correct) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float* z = logits + i * k;
    // From -infinity with a strict >, as CrossEntropy.forward: a NaN logit is never the
    // largest, and all-NaN logits leave the shift at -infinity, so the loss is NaN on both.
    float largest = __int_as_float(0xff800000);  // -infinity (NVRTC has no math.h INFINITY)
    int predicted = 0;
    for (int j = 0; j < k; j++) if (z[j] > largest) { largest = z[j]; predicted = j; }
    double denominator = 0.0;
    for (int j = 0; j < k; j++) denominator += exp((double)(z[j] - largest));
    int label = labels[i];
    loss[i] = (float)(log(denominator) - (double)(z[label] - largest));
    correct[i] = predicted == label ? 1 : 0;
    if (dlogits) {
        for (int j = 0; j < k; j++) {
            double p = exp((double)(z[j] - largest)) / denominator;
            dlogits[i * k + j] = (float)((p - (j == label ? 1.0 : 0.0)) / (double)n);
        }
    }
}

// Adds a batch's loss sum and hit count to totals[0], totals[1]. One block of 256 threads,
// a fixed assignment and a fixed tree: the same inputs always give the same bits.
extern "C" __global__ void accumulate_metrics(const float* loss, const int* correct, int n, double* totals) {
    __shared__ double losses[256];
    __shared__ double hits[256];
    int t = threadIdx.x;
    double l = 0.0, h = 0.0;
    for (int i = t; i < n; i += 256) { l += (double)loss[i]; h += (double)correct[i]; }
    losses[t] = l;
    hits[t] = h;
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) { losses[t] += losses[t + stride]; hits[t] += hits[t + stride]; }
        __syncthreads();
    }
    if (t == 0) { totals[0] += losses[0]; totals[1] += hits[0]; }
}

// SGD.step over every parameter at once (PyTorch semantics: coupled decay, momentum buffer
// = d on the first step, optional Nesterov), then the mask's products w *= m, buf *= m (the
// mask is all ones where a tensor has none: an exact no-op). schedule holds {learning rate,
// first step ? 1 : 0} per step of the epoch, read at *step, so one captured graph serves every
// step. Every operation is rounded on its own, in SGD.step's order: NVRTC's default
// --fmad=true would otherwise fuse mu * buf + d and w - lr * update into FMAs, and the GPU's
// weights would leave the CPU's in the last bit.
extern "C" __global__ void sgd_update(float* w, const float* g, float* buf, const float* mask, const float* schedule,
                                      const int* step, int n, float mu, float decay, int nesterov) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float lr = schedule[2 * (*step)];
    bool first = schedule[2 * (*step) + 1] != 0.0f;
    float d = __fadd_rn(g[i], __fmul_rn(decay, w[i]));
    float update = d;
    float b = buf[i];
    if (mu != 0.0f) {
        b = first ? d : __fadd_rn(__fmul_rn(mu, b), d);
        update = nesterov ? __fadd_rn(d, __fmul_rn(mu, b)) : b;
    }
    float m = mask[i];
    w[i] = __fmul_rn(__fsub_rn(w[i], __fmul_rn(lr, update)), m);
    buf[i] = __fmul_rn(b, m);
}

// The last kernel of a step: the next step reads the next plan and learning rate.
extern "C" __global__ void advance(int* step) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *step += 1;
}
"""#
}
