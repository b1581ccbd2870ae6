// Memory-bound elementwise ops: modulation tables, gated residuals, activations, conversions, (un)patchify.
// Each is one pass over its data; the residual and table ops use 16-byte accesses when the layout allows.
#include <algorithm>

#include "kernels/cuda_check.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/gpu_ops.h"

namespace lf::gpu {

namespace {

using namespace detail;

constexpr int kThreads = 256;

// Grid-stride loops keep the grid small for huge counts and keep every index 64-bit.
#define LF_GRID_STRIDE_LOOP(index, count)                                                      \
  for (int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; index < (count);       \
       index += int64_t(gridDim.x) * blockDim.x)

unsigned capped_blocks(int64_t count) {
  constexpr int64_t kMaxBlocks = 132 * 32;  // enough to fill an H100/H200 many times; the loop covers the rest
  return unsigned(std::min<int64_t>(kMaxBlocks, (count + kThreads - 1) / kThreads));
}

__global__ void modulation_table_kernel(const float* __restrict__ base, const float* __restrict__ per_frame,
                                        int64_t frame_stride, int64_t slot_stride, int64_t frames, int64_t slots,
                                        int64_t width, float* __restrict__ table) {
  LF_GRID_STRIDE_LOOP(index, frames * slots * width) {
    const int64_t i = index % width, slot = (index / width) % slots, frame = index / (width * slots);
    table[index] = base[slot * width + i] + per_frame[frame * frame_stride + slot * slot_stride + i];
  }
}

// x[t, i] += gate[t / tokens_per_frame][i] * y[t, i], kVec elements per thread.
template <typename Y, int kVec>
__global__ void gated_residual_kernel(float* __restrict__ x, const Y* __restrict__ y, int64_t tokens, int64_t width,
                                      const float* __restrict__ gate, int64_t gate_stride, int64_t tokens_per_frame) {
  const int64_t vectors_per_row = width / kVec;
  LF_GRID_STRIDE_LOOP(index, tokens * vectors_per_row) {
    const int64_t token = index / vectors_per_row;
    const int64_t col = (index - token * vectors_per_row) * kVec;
    float acc[kVec], add[kVec];
    load_vec<kVec>(x + token * width + col, acc);
    load_vec<kVec>(y + token * width + col, add);
    if (gate != nullptr) {
      float g[kVec];
      load_vec<kVec>(gate + (token / tokens_per_frame) * gate_stride + col, g);
#pragma unroll
      for (int k = 0; k < kVec; ++k) add[k] *= g[k];
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) acc[k] += add[k];
    store_vec<kVec>(x + token * width + col, acc);
  }
}

template <typename Y>
void gated_residual_any(const char* name, float* x, const Y* y, int64_t tokens, int64_t width, FrameRows gate,
                        int64_t tokens_per_frame, void* stream) {
  LF_CHECK(tokens >= 0 && width > 0, "{}: bad shape {} x {}", name, tokens, width);
  if (tokens == 0) return;
  LF_CHECK(x != nullptr && y != nullptr, "{}: null input", name);
  LF_CHECK(gate.data == nullptr || tokens_per_frame > 0, "{}: tokens_per_frame {}", name, tokens_per_frame);
  const int vec = vector_width(width, {{x, width, 4}, {y, width, int(sizeof(Y))}, {gate.data, gate.frame_stride, 4}});
  const int64_t work = tokens * (width / vec);
  const unsigned blocks = capped_blocks(work);
  cudaStream_t s = as_stream(stream);
  if (vec == 4)
    gated_residual_kernel<Y, 4><<<blocks, kThreads, 0, s>>>(x, y, tokens, width, gate.data, gate.frame_stride,
                                                            tokens_per_frame);
  else if (vec == 2)
    gated_residual_kernel<Y, 2><<<blocks, kThreads, 0, s>>>(x, y, tokens, width, gate.data, gate.frame_stride,
                                                            tokens_per_frame);
  else
    gated_residual_kernel<Y, 1><<<blocks, kThreads, 0, s>>>(x, y, tokens, width, gate.data, gate.frame_stride,
                                                            tokens_per_frame);
  LF_CUDA_LAUNCH_CHECK("{} of {} x {}", name, tokens, width);
}

__global__ void add_row_vector_kernel(float* __restrict__ x, int64_t rows, int64_t width,
                                      const float* __restrict__ row) {
  LF_GRID_STRIDE_LOOP(index, rows * width) x[index] += row[index % width];
}

__device__ __forceinline__ float gelu_tanh(float v) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * v * (1.0f + tanhf(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
}

__global__ void gelu_tanh_kernel(uint16_t* __restrict__ x, int64_t count) {
  LF_GRID_STRIDE_LOOP(index, count) x[index] = float_to_bf16_bits(gelu_tanh(bf16_bits_to_float(x[index])));
}

__global__ void silu_to_bf16_kernel(const float* __restrict__ x, int64_t count, uint16_t* __restrict__ out) {
  LF_GRID_STRIDE_LOOP(index, count) {
    const float v = x[index];
    out[index] = float_to_bf16_bits(v / (1.0f + expf(-v)));
  }
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, int64_t count, uint16_t* __restrict__ out) {
  LF_GRID_STRIDE_LOOP(index, count) out[index] = float_to_bf16_bits(x[index]);
}

__global__ void bf16_to_f32_kernel(const uint16_t* __restrict__ x, int64_t count, float* __restrict__ out) {
  LF_GRID_STRIDE_LOOP(index, count) out[index] = bf16_bits_to_float(x[index]);
}

// One thread per output element (writes coalesced; the gather from the latents is small and cached).
__global__ void patchify_kernel(const float* __restrict__ latents, int64_t frames, int64_t channels, int64_t height,
                                int64_t width, int64_t patch_h, int64_t patch_w, uint16_t* __restrict__ tokens) {
  const int64_t grid_h = height / patch_h, grid_w = width / patch_w, patch_dim = channels * patch_h * patch_w;
  LF_GRID_STRIDE_LOOP(index, frames * grid_h * grid_w * patch_dim) {
    const int64_t token = index / patch_dim, element = index % patch_dim;
    const int64_t r = element % patch_w, q = (element / patch_w) % patch_h, c = element / (patch_w * patch_h);
    const int64_t gx = token % grid_w, gy = (token / grid_w) % grid_h, f = token / (grid_w * grid_h);
    tokens[index] =
        float_to_bf16_bits(latents[((f * channels + c) * height + gy * patch_h + q) * width + gx * patch_w + r]);
  }
}

__global__ void unpatchify_kernel(const float* __restrict__ tokens, int64_t frames, int64_t channels, int64_t grid_h,
                                  int64_t grid_w, int64_t patch_h, int64_t patch_w, float* __restrict__ latents) {
  const int64_t height = grid_h * patch_h, width = grid_w * patch_w, patch_dim = patch_h * patch_w * channels;
  LF_GRID_STRIDE_LOOP(index, frames * channels * height * width) {
    const int64_t xx = index % width, yy = (index / width) % height;
    const int64_t c = (index / (width * height)) % channels, f = index / (width * height * channels);
    const int64_t token = (f * grid_h + yy / patch_h) * grid_w + xx / patch_w;
    latents[index] = tokens[token * patch_dim + ((yy % patch_h) * patch_w + xx % patch_w) * channels + c];
  }
}

#undef LF_GRID_STRIDE_LOOP

// Returns false when there is nothing to do.
bool check_count(const char* name, int64_t count, const void* a, const void* b) {
  LF_CHECK(count >= 0, "{}: negative count {}", name, count);
  if (count == 0) return false;
  LF_CHECK(a != nullptr && b != nullptr, "{}: null pointer", name);
  return true;
}

}  // namespace

void modulation_table(const float* base, const float* per_frame, int64_t frame_stride, int64_t slot_stride,
                      int64_t frames, int64_t slots, int64_t width, float* table, Stream stream) {
  LF_CHECK(frames >= 0 && slots > 0 && width > 0, "modulation_table: bad shape {} x {} x {}", frames, slots, width);
  if (!check_count("modulation_table", frames, base, per_frame)) return;
  LF_CHECK(table != nullptr, "modulation_table: null output");
  const int64_t count = frames * slots * width;
  modulation_table_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(
      base, per_frame, frame_stride, slot_stride, frames, slots, width, table);
  LF_CUDA_LAUNCH_CHECK("modulation_table of {} frames x {} slots x {}", frames, slots, width);
}

void gated_residual(float* x, const uint16_t* y, int64_t tokens, int64_t width, FrameRows gate,
                    int64_t tokens_per_frame, Stream stream) {
  gated_residual_any("gated_residual", x, y, tokens, width, gate, tokens_per_frame, stream);
}

void gated_residual_f32(float* x, const float* y, int64_t tokens, int64_t width, FrameRows gate,
                        int64_t tokens_per_frame, Stream stream) {
  gated_residual_any("gated_residual_f32", x, y, tokens, width, gate, tokens_per_frame, stream);
}

void add_row_vector(float* x, int64_t rows, int64_t width, const float* row, Stream stream) {
  LF_CHECK(width > 0, "add_row_vector: width {}", width);
  if (!check_count("add_row_vector", rows, x, row)) return;
  add_row_vector_kernel<<<capped_blocks(rows * width), kThreads, 0, as_stream(stream)>>>(x, rows, width, row);
  LF_CUDA_LAUNCH_CHECK("add_row_vector of {} x {}", rows, width);
}

void gelu_tanh_inplace(uint16_t* x, int64_t count, Stream stream) {
  if (!check_count("gelu_tanh_inplace", count, x, x)) return;
  gelu_tanh_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(x, count);
  LF_CUDA_LAUNCH_CHECK("gelu_tanh_inplace of {}", count);
}

void silu_to_bf16(const float* x, int64_t count, uint16_t* out, Stream stream) {
  if (!check_count("silu_to_bf16", count, x, out)) return;
  silu_to_bf16_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(x, count, out);
  LF_CUDA_LAUNCH_CHECK("silu_to_bf16 of {}", count);
}

void convert_f32_to_bf16(const float* x, int64_t count, uint16_t* out, Stream stream) {
  if (!check_count("convert_f32_to_bf16", count, x, out)) return;
  f32_to_bf16_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(x, count, out);
  LF_CUDA_LAUNCH_CHECK("convert_f32_to_bf16 of {}", count);
}

void convert_bf16_to_f32(const uint16_t* x, int64_t count, float* out, Stream stream) {
  if (!check_count("convert_bf16_to_f32", count, x, out)) return;
  bf16_to_f32_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(x, count, out);
  LF_CUDA_LAUNCH_CHECK("convert_bf16_to_f32 of {}", count);
}

void patchify(const float* latents, int64_t frames, int64_t channels, int64_t height, int64_t width, int64_t patch_h,
              int64_t patch_w, uint16_t* tokens, Stream stream) {
  LF_CHECK(channels > 0 && patch_h > 0 && patch_w > 0 && height % patch_h == 0 && width % patch_w == 0,
           "patchify: {}x{} (channels {}) not divisible by patch {}x{}", height, width, channels, patch_h, patch_w);
  const int64_t count = frames * channels * height * width;
  if (!check_count("patchify", count, latents, tokens)) return;
  patchify_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(latents, frames, channels, height, width,
                                                                           patch_h, patch_w, tokens);
  LF_CUDA_LAUNCH_CHECK("patchify of [{}, {}, {}, {}]", frames, channels, height, width);
}

void unpatchify(const float* tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                int64_t patch_h, int64_t patch_w, float* latents, Stream stream) {
  LF_CHECK(channels > 0 && grid_h > 0 && grid_w > 0 && patch_h > 0 && patch_w > 0,
           "unpatchify: bad shape channels {} grid {}x{} patch {}x{}", channels, grid_h, grid_w, patch_h, patch_w);
  const int64_t count = frames * channels * grid_h * patch_h * grid_w * patch_w;
  if (!check_count("unpatchify", count, tokens, latents)) return;
  unpatchify_kernel<<<capped_blocks(count), kThreads, 0, as_stream(stream)>>>(tokens, frames, channels, grid_h,
                                                                             grid_w, patch_h, patch_w, latents);
  LF_CUDA_LAUNCH_CHECK("unpatchify to [{}, {}, {}, {}]", frames, channels, grid_h * patch_h, grid_w * patch_w);
}

void copy_rows(void* dst, int64_t dst_stride_bytes, const void* src, int64_t src_stride_bytes, int64_t row_bytes,
               int64_t rows, Stream stream) {
  LF_CHECK(rows >= 0 && row_bytes >= 0 && dst_stride_bytes >= row_bytes && src_stride_bytes >= row_bytes,
           "copy_rows: {} rows of {} bytes with strides {} and {}", rows, row_bytes, dst_stride_bytes,
           src_stride_bytes);
  if (rows == 0 || row_bytes == 0) return;
  LF_CUDA_CHECK(cudaMemcpy2DAsync(dst, size_t(dst_stride_bytes), src, size_t(src_stride_bytes), size_t(row_bytes),
                                  size_t(rows), cudaMemcpyDeviceToDevice, as_stream(stream)),
                "copy_rows: {} rows of {} bytes", rows, row_bytes);
}

}  // namespace lf::gpu
