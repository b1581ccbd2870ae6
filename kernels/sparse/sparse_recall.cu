// Sampled attention recall (sparse_recall.h): one CTA per (query block, head) keeps its sampled query rows in
// shared memory and streams the head's keys once in tiles, so k is read once per query block rather than once per
// row; each lane keeps an online softmax (max, total mass, kept mass) per row over the keys it scores.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/sparse/sparse_recall.h"

namespace lf::gpu::sparse {

namespace {

constexpr int kRecallThreads = 256;
constexpr int kRecallWarps = kRecallThreads / 32;
constexpr int kKeysPerTile = 64;  // two keys per lane per tile
constexpr int kMaxRows = 128;     // sampled rows of one query block
constexpr int kMaxRowsPerWarp = kMaxRows / kRecallWarps;
constexpr int kMaxHeadDim = 128;

struct RecallArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  int64_t q_row_stride, k_row_stride;
  int query_tokens, query_block, query_blocks, head_dim;
  int key_tokens, tokens_per_frame, key_block, blocks_per_frame, key_blocks;
  const int* row_offsets;
  const int* key_indices;
  int sample_stride, sampled_rows;
  float scale;
  float* out;
};

// Online softmax state of one row over some keys: running max, total mass and kept mass relative to the max.
struct Mass {
  float max = -INFINITY, total = 0.f, kept = 0.f;

  __device__ void add(float score, bool selected) {
    if (score > max) {
      const float c = expf(max - score);  // 0 for the first key (max = -inf)
      total = total * c + 1.f;
      kept = kept * c + (selected ? 1.f : 0.f);
      max = score;
    } else {
      const float e = expf(score - max);
      total += e;
      if (selected) kept += e;
    }
  }
  __device__ void merge(const Mass& o) {
    if (o.max == -INFINITY) return;
    if (max == -INFINITY) {
      *this = o;
      return;
    }
    const float m = fmaxf(max, o.max), a = expf(max - m), b = expf(o.max - m);
    total = total * a + o.total * b;
    kept = kept * a + o.kept * b;
    max = m;
  }
};

__global__ void __launch_bounds__(kRecallThreads) sampled_recall_kernel(const RecallArgs a) {
  extern __shared__ __align__(16) float recall_shared[];
  const int head_dim = a.head_dim, k_stride = head_dim + 1;  // padded: lane j reads key row j conflict-free
  float* q_rows = recall_shared;                              // [kMaxRows][head_dim]
  float* k_tile = q_rows + kMaxRows * head_dim;               // [kKeysPerTile][head_dim + 1]
  uint8_t* tile_selected = reinterpret_cast<uint8_t*>(k_tile + kKeysPerTile * k_stride);  // [kKeysPerTile]
  uint8_t* block_selected = tile_selected + kKeysPerTile;                                 // [key_blocks]

  const int qb = blockIdx.x, head = blockIdx.y;
  const int first_token = qb * a.query_block, end_token = min(a.query_tokens, first_token + a.query_block);
  const int first_sample = (first_token + a.sample_stride - 1) / a.sample_stride;  // index of the first sampled row
  const int rows = max(0, (end_token - 1) / a.sample_stride - first_sample + 1);
  if (rows == 0) return;

  // The row's mask as a per-block flag.
  const int mask_row = head * a.query_blocks + qb;
  for (int b = threadIdx.x; b < a.key_blocks; b += blockDim.x) block_selected[b] = 0;
  __syncthreads();
  for (int i = a.row_offsets[mask_row] + threadIdx.x; i < a.row_offsets[mask_row + 1]; i += blockDim.x) {
    const int b = a.key_indices[i];
    if (b >= 0 && b < a.key_blocks) block_selected[b] = 1;
  }
  // Sampled q rows as fp32.
  const int vectors = head_dim / 8;
  for (int i = threadIdx.x; i < rows * vectors; i += blockDim.x) {
    const int r = i / vectors, v = i % vectors;
    const int64_t t = int64_t(first_sample + r) * a.sample_stride;
    const uint4 packed = __ldg(reinterpret_cast<const uint4*>(a.q + t * a.q_row_stride + int64_t(head) * head_dim + v * 8));
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 f = __bfloat1622float2(pairs[e]);
      q_rows[r * head_dim + v * 8 + 2 * e] = f.x;
      q_rows[r * head_dim + v * 8 + 2 * e + 1] = f.y;
    }
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  Mass mass[kMaxRowsPerWarp];
  for (int tile = 0; tile < a.key_tokens; tile += kKeysPerTile) {
    __syncthreads();  // the previous tile is no longer read (and, the first time, the row data is written)
    for (int i = threadIdx.x; i < kKeysPerTile * vectors; i += blockDim.x) {
      const int j = i / vectors, v = i % vectors, key = tile + j;
      uint4 packed = make_uint4(0, 0, 0, 0);
      if (key < a.key_tokens)
        packed = __ldg(reinterpret_cast<const uint4*>(a.k + int64_t(key) * a.k_row_stride + int64_t(head) * head_dim +
                                                      v * 8));
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(pairs[e]);
        k_tile[j * k_stride + v * 8 + 2 * e] = f.x;
        k_tile[j * k_stride + v * 8 + 2 * e + 1] = f.y;
      }
    }
    for (int j = threadIdx.x; j < kKeysPerTile; j += blockDim.x) {
      const int key = tile + j;
      uint8_t flag = 2;  // past the last key
      if (key < a.key_tokens) {
        const int frame = key / a.tokens_per_frame, inside = key - frame * a.tokens_per_frame;
        flag = block_selected[frame * a.blocks_per_frame + inside / a.key_block];
      }
      tile_selected[j] = flag;
    }
    __syncthreads();
    const float* key0 = k_tile + lane * k_stride;
    const float* key1 = k_tile + (lane + 32) * k_stride;
    const uint8_t flag0 = tile_selected[lane], flag1 = tile_selected[lane + 32];
#pragma unroll
    for (int i = 0; i < kMaxRowsPerWarp; ++i) {
      const int r = warp + i * kRecallWarps;
      if (r >= rows) break;
      const float* query = q_rows + r * head_dim;
      float dot0 = 0.f, dot1 = 0.f;
      for (int d = 0; d < head_dim; ++d) {
        const float qd = query[d];
        dot0 = fmaf(qd, key0[d], dot0);
        dot1 = fmaf(qd, key1[d], dot1);
      }
      if (flag0 != 2) mass[i].add(dot0 * a.scale, flag0 == 1);
      if (flag1 != 2) mass[i].add(dot1 * a.scale, flag1 == 1);
    }
  }
#pragma unroll
  for (int i = 0; i < kMaxRowsPerWarp; ++i) {
    const int r = warp + i * kRecallWarps;
    if (r >= rows) break;
    Mass m = mass[i];
    for (int offset = 16; offset > 0; offset >>= 1) {
      Mass other;
      other.max = __shfl_xor_sync(0xffffffffu, m.max, offset);
      other.total = __shfl_xor_sync(0xffffffffu, m.total, offset);
      other.kept = __shfl_xor_sync(0xffffffffu, m.kept, offset);
      m.merge(other);
    }
    if (lane == 0)
      a.out[int64_t(head) * a.sampled_rows + first_sample + r] = m.total > 0.f ? m.kept / m.total : 0.f;
  }
}

}  // namespace

int recall_sampled_rows(int query_tokens, int sample_stride) {
  LF_CHECK(query_tokens > 0 && sample_stride >= 1, "sampled recall: query_tokens {} / sample_stride {}", query_tokens,
           sample_stride);
  return (query_tokens - 1) / sample_stride + 1;
}

void sampled_recall(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride, const PlannerGeometry& g,
                    const int* row_offsets, const int* key_indices, int sample_stride, float scale, float* out,
                    void* stream) {
  LF_CHECK(q != nullptr && k != nullptr && row_offsets != nullptr && key_indices != nullptr && out != nullptr,
           "sampled recall: a pointer is null");
  LF_CHECK(g.heads > 0 && g.heads <= 65535, "sampled recall: heads {} (1..65535)", g.heads);
  LF_CHECK(g.head_dim > 0 && g.head_dim % 8 == 0 && g.head_dim <= kMaxHeadDim,
           "sampled recall: head_dim {} is not a multiple of 8 up to {}", g.head_dim, kMaxHeadDim);
  LF_CHECK(g.query_block > 0 && g.query_block <= kMaxRows, "sampled recall: query_block {} (1..{})", g.query_block,
           kMaxRows);
  LF_CHECK(g.key_frames > 0 && g.tokens_per_frame > 0 && g.key_block > 0,
           "sampled recall: key_frames {} / tokens_per_frame {} / key_block {}", g.key_frames, g.tokens_per_frame,
           g.key_block);
  LF_CHECK(g.key_blocks() <= kMaxKeyBlocksPerRow, "sampled recall: {} key blocks per row (at most {})", g.key_blocks(),
           kMaxKeyBlocksPerRow);
  LF_CHECK(q_row_stride % 8 == 0 && k_row_stride % 8 == 0 && reinterpret_cast<uintptr_t>(q) % 16 == 0 &&
               reinterpret_cast<uintptr_t>(k) % 16 == 0,
           "sampled recall: q/k rows must be 16-byte aligned (row strides {} / {})", q_row_stride, k_row_stride);
  RecallArgs a{};
  a.q = static_cast<const __nv_bfloat16*>(q);
  a.k = static_cast<const __nv_bfloat16*>(k);
  a.q_row_stride = q_row_stride;
  a.k_row_stride = k_row_stride;
  a.query_tokens = g.query_tokens;
  a.query_block = g.query_block;
  a.query_blocks = g.query_blocks();
  a.head_dim = g.head_dim;
  a.key_tokens = g.key_tokens();
  a.tokens_per_frame = g.tokens_per_frame;
  a.key_block = g.key_block;
  a.blocks_per_frame = g.blocks_per_frame();
  a.key_blocks = g.key_blocks();
  a.row_offsets = row_offsets;
  a.key_indices = key_indices;
  a.sample_stride = sample_stride;
  a.sampled_rows = recall_sampled_rows(g.query_tokens, sample_stride);
  a.scale = scale;
  a.out = out;
  const size_t shared = (size_t(kMaxRows) * g.head_dim + size_t(kKeysPerTile) * (g.head_dim + 1)) * sizeof(float) +
                        kKeysPerTile + size_t(g.key_blocks());
  LF_CUDA_CHECK(cudaFuncSetAttribute(sampled_recall_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)),
                "sampled recall: {} bytes of shared memory", shared);
  sampled_recall_kernel<<<dim3(g.query_blocks(), g.heads), kRecallThreads, shared, static_cast<cudaStream_t>(stream)>>>(
      a);
  LF_CUDA_LAUNCH_CHECK("sampled recall: {} query blocks x {} heads, {} keys", g.query_blocks(), g.heads,
                       g.key_tokens());
}

}  // namespace lf::gpu::sparse
