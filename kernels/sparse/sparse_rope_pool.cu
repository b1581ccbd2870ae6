// RoPE in place and the planner's mean pooling of the roped rows in one pass (rope_and_pool, sparse_planner.h).
// Why: the GPU planners pool q and the chunk's new keys every call, which re-read both tensors from memory
// (29 MB at the bench shape, about 14 us of the planner's 40); the RoPE pass that comes just before already
// streams every row through registers. Here a CTA owns one pooling block of rows for kHeadsPerCta heads: it
// rotates each row (the same rope_cos_sin / rope_rotate / bf16 rounding as rope_kernel), stores it, and adds the
// rounded values in the thread layout and order of pool_rows_kernel, so both outputs equal rope_apply followed
// by pool_queries / pool_keys bit for bit. cos/sin are computed once per (row, pair) for the CTA's heads
// (rope_kernel shares them across all heads; the per-CTA head group keeps 4 heads' sums in registers).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/rope_params.cuh"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_pool_segments.cuh"

namespace lf::gpu::sparse {

namespace {

using gpu::detail::RopeParams;
using gpu::detail::RopeShared;

constexpr int kRopePoolThreads = 256;  // = pool_rows_kernel's CTA: lanes of 8 elements x token lanes
constexpr int kHeadsPerCta = 4;
constexpr int kRowsInFlight = 2;  // rows per thread loaded together (x kHeadsPerCta vectors of 16 bytes)

struct RopePoolJob {
  uint16_t* x;
  int64_t row_stride;
  int heads, head_dim, block, blocks_per_frame, tokens_per_frame, tokens, blocks, head_groups;
  bool frame_aligned;
  float* pooled;  // [heads, blocks, head_dim]
};

__global__ void __launch_bounds__(kRopePoolThreads)
    rope_pool_kernel(const RopePoolJob job, const __grid_constant__ RopeParams params) {
  __shared__ RopeShared rope;
  // [token_lane][head in group][head_dim]: token_lanes x head_dim = 8 x kRopePoolThreads for every head_dim.
  __shared__ float partial[kRopePoolThreads * 8 * kHeadsPerCta];
  gpu::detail::rope_load_shared(params, rope);
  const int segment = int(blockIdx.x), group = int(blockIdx.y), head_dim = job.head_dim;
  const detail::Segment seg = job.frame_aligned
                                  ? detail::key_segment(segment, job.block, job.tokens_per_frame, job.blocks_per_frame)
                                  : detail::query_segment(segment, job.block, job.tokens);
  const int first = seg.first, count = seg.count;
  const int lanes = head_dim / 8, token_lanes = int(blockDim.x) / lanes;
  const int lane = int(threadIdx.x) % lanes, token_lane = int(threadIdx.x) / lanes;
  const int first_head = group * kHeadsPerCta, heads_here = min(kHeadsPerCta, job.heads - first_head);
  float acc[kHeadsPerCta][8];
#pragma unroll
  for (int h = 0; h < kHeadsPerCta; ++h)
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[h][e] = 0.f;
  uint16_t* column = job.x + int64_t(first_head) * head_dim + lane * 8;
  for (int base = token_lane; base < count; base += kRowsInFlight * token_lanes) {
    uint4 packed[kRowsInFlight][kHeadsPerCta];
#pragma unroll
    for (int u = 0; u < kRowsInFlight; ++u) {
      const int t = base + u * token_lanes;
#pragma unroll
      for (int h = 0; h < kHeadsPerCta; ++h)
        packed[u][h] = t < count && h < heads_here
                           ? *reinterpret_cast<const uint4*>(column + int64_t(first + t) * job.row_stride +
                                                             int64_t(h) * head_dim)
                           : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kRowsInFlight; ++u) {
      const int t = base + u * token_lanes;
      if (t >= count) break;
      const gpu::detail::TokenPosition position = gpu::detail::rope_token_position(params, rope, first + t);
      float cos_angle[4], sin_angle[4];
#pragma unroll
      for (int p = 0; p < 4; ++p) gpu::detail::rope_cos_sin(params, rope, position, lane * 4 + p, cos_angle[p], sin_angle[p]);
#pragma unroll
      for (int h = 0; h < kHeadsPerCta; ++h) {
        if (h >= heads_here) break;
        const uint32_t words[4] = {packed[u][h].x, packed[u][h].y, packed[u][h].z, packed[u][h].w};
        uint32_t out[4];
#pragma unroll
        for (int p = 0; p < 4; ++p) {
          float a = gpu::detail::bf16_bits_to_float(words[p] & 0xffffu);
          float b = gpu::detail::bf16_bits_to_float(words[p] >> 16);
          gpu::detail::rope_rotate(a, b, cos_angle[p], sin_angle[p]);
          const uint16_t a_bits = gpu::detail::float_to_bf16_bits(a), b_bits = gpu::detail::float_to_bf16_bits(b);
          out[p] = uint32_t(a_bits) | (uint32_t(b_bits) << 16);
          // The pooled value is the stored (rounded) one, as pool_rows_kernel would read it back.
          acc[h][2 * p] += gpu::detail::bf16_bits_to_float(a_bits);
          acc[h][2 * p + 1] += gpu::detail::bf16_bits_to_float(b_bits);
        }
        *reinterpret_cast<uint4*>(column + int64_t(first + t) * job.row_stride + int64_t(h) * head_dim) =
            make_uint4(out[0], out[1], out[2], out[3]);
      }
    }
  }
#pragma unroll
  for (int h = 0; h < kHeadsPerCta; ++h)
#pragma unroll
    for (int e = 0; e < 8; ++e) partial[(token_lane * kHeadsPerCta + h) * head_dim + lane * 8 + e] = acc[h][e];
  __syncthreads();
  for (int i = int(threadIdx.x); i < heads_here * head_dim; i += int(blockDim.x)) {
    const int h = i / head_dim, d = i - h * head_dim;
    float sum = 0.f;
    for (int t = 0; t < token_lanes; ++t) sum += partial[(t * kHeadsPerCta + h) * head_dim + d];
    job.pooled[(int64_t(first_head + h) * job.blocks + segment) * head_dim + d] = sum / float(count);
  }
}

}  // namespace

int64_t rope_pool_blocks(int64_t tokens, int64_t tokens_per_frame, int block, bool frame_aligned) {
  LF_CHECK(block > 0 && tokens_per_frame > 0, "rope_and_pool: block {} / tokens_per_frame {}", block, tokens_per_frame);
  if (!frame_aligned) return (tokens + block - 1) / block;
  return tokens / tokens_per_frame * frame_blocks::blocks_per_frame(tokens_per_frame, int64_t(block));
}

void rope_and_pool(uint16_t* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                   const int64_t* frame_positions, int64_t frame_count, int block, bool frame_aligned, float* pooled,
                   void* stream) {
  if (row_stride == 0) row_stride = layout.heads * layout.head_dim;
  LF_CHECK(x != nullptr && pooled != nullptr && tokens > 0, "rope_and_pool: null x / pooled or no tokens ({})", tokens);
  LF_CHECK(layout.head_dim % 8 == 0 && layout.head_dim <= 256 && layout.heads > 0 && layout.heads <= 65535,
           "rope_and_pool: heads {} x head_dim {} (head_dim a multiple of 8 up to 256)", layout.heads, layout.head_dim);
  LF_CHECK(reinterpret_cast<uintptr_t>(x) % 16 == 0 && row_stride % 8 == 0 && row_stride >= layout.heads * layout.head_dim,
           "rope_and_pool: x must be 16-byte aligned with a row stride {} (multiple of 8, >= heads x head_dim)",
           row_stride);
  LF_CHECK(tokens <= int64_t(gpu::detail::kMaxRopeFramesPerLaunch) * layout.tokens_per_frame && tokens < (int64_t(1) << 31),
           "rope_and_pool: {} tokens is more than {} frames of {}", tokens, gpu::detail::kMaxRopeFramesPerLaunch,
           layout.tokens_per_frame);
  LF_CHECK(!frame_aligned || tokens % layout.tokens_per_frame == 0,
           "rope_and_pool: {} tokens is not a whole number of frames of {}", tokens, layout.tokens_per_frame);
  RopePoolJob job{};
  job.x = x;
  job.row_stride = row_stride;
  job.heads = int(layout.heads);
  job.head_dim = int(layout.head_dim);
  job.block = block;
  job.tokens_per_frame = int(layout.tokens_per_frame);
  job.blocks_per_frame = int(frame_blocks::blocks_per_frame(layout.tokens_per_frame, int64_t(block)));
  job.tokens = int(tokens);
  job.blocks = int(rope_pool_blocks(tokens, layout.tokens_per_frame, block, frame_aligned));
  job.head_groups = (job.heads + kHeadsPerCta - 1) / kHeadsPerCta;
  job.frame_aligned = frame_aligned;
  job.pooled = pooled;
  int launches = 0;
  gpu::detail::for_each_rope_launch("rope_and_pool", layout, tokens, frame_positions, frame_count,
                                    [&](int64_t, int64_t, const RopeParams& params) {
                                      ++launches;  // one: tokens fit one launch (checked above)
                                      rope_pool_kernel<<<dim3(job.blocks, job.head_groups), kRopePoolThreads, 0,
                                                         static_cast<cudaStream_t>(stream)>>>(job, params);
                                    });
  LF_CUDA_LAUNCH_CHECK("rope_and_pool: {} blocks of {} x {} heads", job.blocks, block, job.heads);
  LF_CHECK(launches == 1, "rope_and_pool: {} RoPE launches", launches);
}

}  // namespace lf::gpu::sparse
