// Decoder kernels (see conv_ops.h). Simple one-thread-per-output kernels: the GEMM carries the FLOPs, these are
// memory-bound passes whose cost is one read and one write of the activation.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "kernels/conv/conv_ops.h"
#include "core/error.h"
#include "kernels/cuda_check.h"

namespace lf::gpu {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load_bf16(const uint16_t* p) { return __uint_as_float(uint32_t(*p) << 16); }
__device__ __forceinline__ uint16_t to_bf16(float value) { return __bfloat16_as_ushort(__float2bfloat16_rn(value)); }

int64_t blocks_for(int64_t count) { return (count + kThreads - 1) / kThreads; }

cudaStream_t as_stream(Stream stream) { return static_cast<cudaStream_t>(stream); }

__global__ void pack_weight_kernel(const float* weight, int64_t outs, int64_t taps, int64_t padded, uint16_t* packed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= outs * padded) return;
  const int64_t o = i / padded, k = i % padded;
  packed[i] = k < taps ? to_bf16(weight[o * taps + k]) : uint16_t(0);
}

// packed[o][dt][c][y][x] = bf16(weight[o][c][dt][y][x]): the causal conv's filter as a 2D filter over kt * C
// channels in (dt, c) order (conv_cudnn.h).
__global__ void pack_time_major_kernel(const float* weight, int64_t outs, int64_t channels, int64_t kt, int64_t taps2d,
                                       uint16_t* packed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= outs * kt * channels * taps2d) return;
  const int64_t s = i % taps2d, c = (i / taps2d) % channels, dt = (i / (taps2d * channels)) % kt;
  const int64_t o = i / (taps2d * channels * kt);
  packed[i] = to_bf16(weight[((o * channels + c) * kt + dt) * taps2d + s]);
}

// y = bf16(relu?(y + bias[o] + residual)) in place over [frames, outs, plane].
__global__ void bias_residual_kernel(uint16_t* y, int64_t frames, int64_t outs, int64_t plane, const float* bias,
                                     const uint16_t* residual, bool relu) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= frames * outs * plane) return;
  float value = load_bf16(y + i);
  if (bias) value += bias[(i / plane) % outs];
  if (residual) value += load_bf16(residual + i);
  if (relu) value = fmaxf(value, 0.0f);
  y[i] = to_bf16(value);
}

__global__ void im2col_kernel(Im2colArgs a, int64_t padded) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.pixels * padded) return;
  const int64_t p = i / padded, k = i % padded;
  const int64_t taps = a.channels * a.kt * a.kh * a.kw;
  uint16_t value = 0;
  if (k < taps) {
    const int64_t dx = k % a.kw, dy = (k / a.kw) % a.kh, dt = (k / (a.kw * a.kh)) % a.kt;
    const int64_t c = k / (a.kw * a.kh * a.kt);
    const int64_t pixel = a.first_pixel + p;
    const int64_t y = pixel / a.width + dy - a.kh / 2, x = pixel % a.width + dx - a.kw / 2;
    if (y >= 0 && y < a.height && x >= 0 && x < a.width) {
      const int64_t source = a.frame + dt - (a.kt - 1);
      const int64_t frame_elems = a.channels * a.height * a.width;
      const uint16_t* frame =
          source >= 0 ? a.input + source * frame_elems : a.history + (source + a.kt - 1) * frame_elems;
      value = frame[(c * a.height + y) * a.width + x];
    }
  }
  a.columns[i] = value;
}

__global__ void epilogue_kernel(const float* acc, int64_t acc_stride, int64_t outs, int64_t pixels, const float* bias,
                                const uint16_t* residual, int64_t first, int64_t plane, bool relu, uint16_t* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= outs * pixels) return;
  const int64_t o = i / pixels, p = i % pixels;
  float value = acc[o * acc_stride + p];
  if (bias) value += bias[o];
  if (residual) value += load_bf16(residual + o * plane + first + p);
  if (relu) value = fmaxf(value, 0.0f);
  out[o * plane + first + p] = to_bf16(value);
}

__global__ void upsample_kernel(const uint16_t* x, int64_t planes, int64_t height, int64_t width, uint16_t* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t out_w = 2 * width, out_plane = 4 * height * width;
  if (i >= planes * out_plane) return;
  const int64_t plane = i / out_plane, y = (i % out_plane) / out_w, xo = i % out_w;
  out[i] = x[(plane * height + y / 2) * width + xo / 2];
}

// One thread per (frame, pixel): adjacent threads read adjacent pixels of the same channel plane (coalesced).
__global__ void channel_rms_kernel(const uint16_t* x, int64_t frames, int64_t channels, int64_t pixels,
                                   const float* gamma, float eps, float root_channels, bool silu, uint16_t* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= frames * pixels) return;
  const int64_t t = i / pixels, p = i % pixels;
  const uint16_t* column = x + t * channels * pixels + p;
  float sum_sq = 0;
  for (int64_t c = 0; c < channels; ++c) {
    const float v = load_bf16(column + c * pixels);
    sum_sq = fmaf(v, v, sum_sq);
  }
  const float scale = root_channels / fmaxf(sqrtf(sum_sq), eps);
  uint16_t* out_column = out + t * channels * pixels + p;
  for (int64_t c = 0; c < channels; ++c) {
    float v = load_bf16(column + c * pixels) * scale * gamma[c];
    if (silu) v = v / (1.0f + expf(-v));
    out_column[c * pixels] = to_bf16(v);
  }
}

__global__ void clamp_affine_kernel(const uint16_t* x, int64_t count, float low, float high, float scale, float shift,
                                    float* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = __fadd_rn(__fmul_rn(fminf(fmaxf(load_bf16(x + i), low), high), scale), shift);
}

__global__ void tanh_kernel(const float* x, int64_t count, float limit, uint16_t* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < count) out[i] = to_bf16(tanhf(x[i] / limit) * limit);
}

// 32x32 tiles through shared memory so both the read and the write are coalesced.
__global__ void transpose_kernel(const uint16_t* x, int64_t rows, int64_t cols, uint16_t* out) {
  __shared__ uint16_t tile[32][33];
  const int64_t col = int64_t(blockIdx.x) * 32 + threadIdx.x;
  for (int r = threadIdx.y; r < 32; r += blockDim.y) {
    const int64_t row = int64_t(blockIdx.y) * 32 + r;
    if (row < rows && col < cols) tile[r][threadIdx.x] = x[row * cols + col];
  }
  __syncthreads();
  const int64_t out_row = int64_t(blockIdx.x) * 32;  // = input column block
  for (int r = threadIdx.y; r < 32; r += blockDim.y) {
    const int64_t o_row = out_row + r, o_col = int64_t(blockIdx.y) * 32 + threadIdx.x;
    if (o_row < cols && o_col < rows) out[o_row * rows + o_col] = tile[threadIdx.x][r];
  }
}

// One block per row: max, then sum of exponentials, then normalised bf16 probabilities.
__global__ void softmax_kernel(const float* scores, int64_t cols, int64_t stride, float scale, uint16_t* out) {
  __shared__ float reduce[kThreads];
  const float* row = scores + int64_t(blockIdx.x) * stride;
  uint16_t* out_row = out + int64_t(blockIdx.x) * stride;
  for (int64_t j = cols + threadIdx.x; j < stride; j += blockDim.x) out_row[j] = 0;
  float top = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) top = fmaxf(top, row[j] * scale);
  reduce[threadIdx.x] = top;
  __syncthreads();
  for (int step = blockDim.x / 2; step > 0; step /= 2) {
    if (threadIdx.x < step) reduce[threadIdx.x] = fmaxf(reduce[threadIdx.x], reduce[threadIdx.x + step]);
    __syncthreads();
  }
  top = reduce[0];
  __syncthreads();
  float total = 0;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) total += expf(row[j] * scale - top);
  reduce[threadIdx.x] = total;
  __syncthreads();
  for (int step = blockDim.x / 2; step > 0; step /= 2) {
    if (threadIdx.x < step) reduce[threadIdx.x] += reduce[threadIdx.x + step];
    __syncthreads();
  }
  const float inverse = 1.0f / reduce[0];
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out_row[j] = to_bf16(expf(row[j] * scale - top) * inverse);
}

__global__ void concat_kernel(const uint16_t* a, int64_t a_elems, const uint16_t* b, int64_t b_elems, int64_t frames,
                              uint16_t* out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = a_elems + b_elems;
  if (i >= frames * row) return;
  const int64_t t = i / row, e = i % row;
  out[i] = e < a_elems ? a[t * a_elems + e] : b[t * b_elems + e - a_elems];
}

}  // namespace

void conv_pack_weight(const float* weight, int64_t outs, int64_t taps, uint16_t* packed, Stream stream) {
  const int64_t padded = conv_padded_taps(taps);
  if (outs * padded == 0) return;
  pack_weight_kernel<<<blocks_for(outs * padded), kThreads, 0, as_stream(stream)>>>(weight, outs, taps, padded, packed);
  LF_CUDA_LAUNCH_CHECK("conv_pack_weight [{}, {}]", outs, taps);
}

void conv_pack_weight_time_major(const float* weight, int64_t outs, int64_t channels, int64_t kt, int64_t kh,
                                 int64_t kw, uint16_t* packed, Stream stream) {
  const int64_t count = outs * channels * kt * kh * kw;
  if (count == 0) return;
  pack_time_major_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(weight, outs, channels, kt, kh * kw,
                                                                              packed);
  LF_CUDA_LAUNCH_CHECK("conv_pack_weight_time_major [{}, {}, {}]", outs, channels, kt);
}

void conv_bias_residual(uint16_t* y, int64_t frames, int64_t outs, int64_t plane, const float* bias,
                        const uint16_t* residual, bool relu, Stream stream) {
  const int64_t count = frames * outs * plane;
  if (count == 0 || (!bias && !residual && !relu)) return;
  bias_residual_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(y, frames, outs, plane, bias, residual,
                                                                            relu);
  LF_CUDA_LAUNCH_CHECK("conv_bias_residual [{}, {}, {}]", frames, outs, plane);
}

void conv_im2col(const Im2colArgs& args, Stream stream) {
  LF_CHECK(args.kt == 1 || args.history, "conv_im2col: kt {} needs a history", args.kt);
  const int64_t padded = conv_padded_taps(args.channels * args.kt * args.kh * args.kw);
  if (args.pixels * padded == 0) return;
  im2col_kernel<<<blocks_for(args.pixels * padded), kThreads, 0, as_stream(stream)>>>(args, padded);
  LF_CUDA_LAUNCH_CHECK("conv_im2col {} pixels x {} taps", args.pixels, padded);
}

void conv_epilogue(const float* acc, int64_t acc_stride, int64_t outs, int64_t pixels, const float* bias,
                   const uint16_t* residual, int64_t first_pixel, int64_t plane, bool relu, uint16_t* out,
                   Stream stream) {
  if (outs * pixels == 0) return;
  epilogue_kernel<<<blocks_for(outs * pixels), kThreads, 0, as_stream(stream)>>>(
      acc, acc_stride, outs, pixels, bias, residual, first_pixel, plane, relu, out);
  LF_CUDA_LAUNCH_CHECK("conv_epilogue [{}, {}]", outs, pixels);
}

void upsample_nearest2x(const uint16_t* x, int64_t planes, int64_t height, int64_t width, uint16_t* out,
                        Stream stream) {
  const int64_t count = planes * 4 * height * width;
  if (count == 0) return;
  upsample_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(x, planes, height, width, out);
  LF_CUDA_LAUNCH_CHECK("upsample_nearest2x {} planes {}x{}", planes, height, width);
}

void channel_rms_norm(const uint16_t* x, int64_t frames, int64_t channels, int64_t pixels, const float* gamma,
                      double eps, bool then_silu, uint16_t* out, Stream stream) {
  if (frames * pixels == 0) return;
  channel_rms_kernel<<<blocks_for(frames * pixels), kThreads, 0, as_stream(stream)>>>(
      x, frames, channels, pixels, gamma, float(eps), float(std::sqrt(double(channels))), then_silu, out);
  LF_CUDA_LAUNCH_CHECK("channel_rms_norm [{}, {}, {}]", frames, channels, pixels);
}

void clamp_affine(const uint16_t* x, int64_t count, float low, float high, float scale, float shift, float* out,
                  Stream stream) {
  if (count == 0) return;
  clamp_affine_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(x, count, low, high, scale, shift, out);
  LF_CUDA_LAUNCH_CHECK("clamp_affine {}", count);
}

void tanh_clamp(const float* x, int64_t count, double limit, uint16_t* out, Stream stream) {
  if (count == 0) return;
  tanh_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(x, count, float(limit), out);
  LF_CUDA_LAUNCH_CHECK("tanh_clamp {}", count);
}

void transpose_bf16(const uint16_t* x, int64_t rows, int64_t cols, uint16_t* out, Stream stream) {
  if (rows * cols == 0) return;
  const dim3 grid(unsigned((cols + 31) / 32), unsigned((rows + 31) / 32));
  transpose_kernel<<<grid, dim3(32, 8), 0, as_stream(stream)>>>(x, rows, cols, out);
  LF_CUDA_LAUNCH_CHECK("transpose_bf16 [{}, {}]", rows, cols);
}

void softmax_rows(const float* scores, int64_t rows, int64_t cols, int64_t stride, double scale, uint16_t* out,
                  Stream stream) {
  if (rows * cols == 0) return;
  LF_CHECK(stride >= cols, "softmax_rows: stride {} below {} columns", stride, cols);
  softmax_kernel<<<unsigned(rows), kThreads, 0, as_stream(stream)>>>(scores, cols, stride, float(scale), out);
  LF_CUDA_LAUNCH_CHECK("softmax_rows [{}, {}]", rows, cols);
}

void concat_frames_rows(const uint16_t* a, int64_t a_elems, const uint16_t* b, int64_t b_elems, int64_t frames,
                        uint16_t* out, Stream stream) {
  const int64_t count = frames * (a_elems + b_elems);
  if (count == 0) return;
  concat_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(a, a_elems, b, b_elems, frames, out);
  LF_CUDA_LAUNCH_CHECK("concat_channels {} frames", frames);
}

}  // namespace lf::gpu
