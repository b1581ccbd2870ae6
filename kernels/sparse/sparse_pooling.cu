// Mean pooling of q/k into blocks and frames, pooled block scores, and the whole planners (pool -> score ->
// select) with their one workspace. Selection kernels: sparse_select.cu.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "cuda_check.h"
#include "sparse/sparse_planner.h"

namespace lf::gpu::sparse {

namespace {

// tuned: threads per pooling CTA. A CTA pools one (block, head): head_dim / 8 lanes of 16-byte loads across the
// row, the rest of the threads over tokens, so each block's 64-128 rows stream in a few wide waves.
constexpr int kPoolThreads = 256;
// Key blocks per scoring CTA: one per lane, so a warp writes 32 consecutive scores of a row.
constexpr int kScoreKeysPerCta = 32;
constexpr int kScoreThreads = 256;
constexpr int kMaxHeadDim = 256;

// One segment of rows to average: the query block or the frame-aligned key block `segment`.
struct Segment {
  int first, count;
};

__device__ __forceinline__ Segment query_segment(int segment, int query_block, int query_tokens) {
  const int first = segment * query_block;
  return {first, min(query_block, query_tokens - first)};
}

__device__ __forceinline__ Segment key_segment(int segment, int key_block, int tokens_per_frame, int blocks_per_frame) {
  const int frame = segment / blocks_per_frame;
  const int inside = (segment - frame * blocks_per_frame) * key_block;
  return {frame * tokens_per_frame + inside, min(key_block, tokens_per_frame - inside)};
}

// out[head, segment, :] = mean of rows [first, first + count) of one head. blockDim.x = lanes * token_lanes, with
// lanes = head_dim / 8 (one 16-byte vector of 8 bf16 each).
template <bool kKeys>
__global__ void __launch_bounds__(kPoolThreads)
    pool_rows_kernel(const __nv_bfloat16* src, int64_t row_stride, int head_dim, int block, int query_tokens,
                     int tokens_per_frame, int blocks_per_frame, int segments, float* out) {
  __shared__ float partial[kPoolThreads * 8];
  const int segment = blockIdx.x, head = blockIdx.y;
  const Segment seg = kKeys ? key_segment(segment, block, tokens_per_frame, blocks_per_frame)
                            : query_segment(segment, block, query_tokens);
  const int lanes = head_dim / 8;
  const int token_lanes = blockDim.x / lanes;
  const int lane = threadIdx.x % lanes, token_lane = threadIdx.x / lanes;
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const __nv_bfloat16* column = src + int64_t(head) * head_dim + lane * 8;
  for (int t = token_lane; t < seg.count; t += token_lanes) {
    const uint4 packed = __ldg(reinterpret_cast<const uint4*>(column + int64_t(seg.first + t) * row_stride));
    const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 values = __bfloat1622float2(pairs[e]);
      acc[2 * e] += values.x;
      acc[2 * e + 1] += values.y;
    }
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) partial[token_lane * head_dim + lane * 8 + e] = acc[e];
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.f;
    for (int t = 0; t < token_lanes; ++t) sum += partial[t * head_dim + d];
    out[(int64_t(head) * segments + segment) * head_dim + d] = sum / float(seg.count);
  }
}

// Frame key = mean of the frame's keys = sum over its blocks of (block mean x block length) / tokens_per_frame.
__global__ void pool_frames_kernel(const float* pooled_keys, int head_dim, int key_block, int tokens_per_frame,
                                   int blocks_per_frame, int key_frames, float* pooled_frame_keys) {
  const int frame = blockIdx.x, head = blockIdx.y;
  const int key_blocks = key_frames * blocks_per_frame;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.f;
    for (int i = 0; i < blocks_per_frame; ++i) {
      const int length = min(key_block, tokens_per_frame - i * key_block);
      sum += pooled_keys[(int64_t(head) * key_blocks + frame * blocks_per_frame + i) * head_dim + d] * float(length);
    }
    pooled_frame_keys[(int64_t(head) * key_frames + frame) * head_dim + d] = sum / float(tokens_per_frame);
  }
}

// A tile of kScoreKeysPerCta pooled keys in shared memory (rows padded by one float: lane j reads row j, and an
// unpadded 128-float stride would put all 32 lanes in one bank); warps walk the query blocks.
__global__ void __launch_bounds__(kScoreThreads)
    block_scores_kernel(const float* queries, const float* keys, int query_blocks, int key_count, int head_dim,
                        float* scores) {
  extern __shared__ float key_tile[];  // [kScoreKeysPerCta][head_dim + 1]
  const int first_key = blockIdx.x * kScoreKeysPerCta, head = blockIdx.y;
  const int stride = head_dim + 1;
  for (int i = threadIdx.x; i < kScoreKeysPerCta * head_dim; i += blockDim.x) {
    const int row = i / head_dim, d = i % head_dim;
    key_tile[row * stride + d] =
        first_key + row < key_count ? keys[(int64_t(head) * key_count + first_key + row) * head_dim + d] : 0.f;
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const float* own_key = key_tile + lane * stride;
  for (int qb = warp; qb < query_blocks; qb += warps) {
    const float* query = queries + (int64_t(head) * query_blocks + qb) * head_dim;
    float dot = 0.f;
    for (int d = 0; d < head_dim; ++d) dot = fmaf(__ldg(query + d), own_key[d], dot);
    if (first_key + lane < key_count) scores[(int64_t(head) * query_blocks + qb) * key_count + first_key + lane] = dot;
  }
}

void check_geometry(const PlannerGeometry& g) {
  LF_CHECK(g.heads > 0 && g.heads <= 65535, "sparse planner: heads {} (1..65535)", g.heads);
  LF_CHECK(g.head_dim > 0 && g.head_dim % 8 == 0 && g.head_dim <= kMaxHeadDim,
           "sparse planner: head_dim {} is not a multiple of 8 up to {}", g.head_dim, kMaxHeadDim);
  LF_CHECK(g.query_tokens > 0 && g.query_block > 0, "sparse planner: query_tokens {} / query_block {}", g.query_tokens,
           g.query_block);
  LF_CHECK(g.key_frames > 0 && g.tokens_per_frame > 0 && g.key_block > 0,
           "sparse planner: key_frames {} / tokens_per_frame {} / key_block {}", g.key_frames, g.tokens_per_frame,
           g.key_block);
  LF_CHECK(int64_t(g.key_frames) * g.tokens_per_frame < (int64_t(1) << 31), "sparse planner: {} x {} keys overflow",
           g.key_frames, g.tokens_per_frame);
}

void check_rows_view(const void* pointer, int64_t row_stride, const PlannerGeometry& g, const char* name) {
  LF_CHECK(pointer != nullptr, "sparse planner: {} is null", name);
  LF_CHECK(reinterpret_cast<uintptr_t>(pointer) % 16 == 0, "sparse planner: {} pointer {} is not 16-byte aligned", name,
           pointer);
  LF_CHECK(row_stride >= int64_t(g.heads) * g.head_dim && row_stride % 8 == 0,
           "sparse planner: {} row stride {} (at least heads * head_dim = {}, a multiple of 8)", name, row_stride,
           int64_t(g.heads) * g.head_dim);
}

int pool_threads(int head_dim) { return (kPoolThreads / (head_dim / 8)) * (head_dim / 8); }

size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

void pool_queries(const void* q, int64_t q_row_stride, const PlannerGeometry& g, float* pooled_queries, void* stream) {
  check_geometry(g);
  check_rows_view(q, q_row_stride, g, "q");
  LF_CHECK(pooled_queries != nullptr, "sparse planner: pooled_queries is null");
  const dim3 grid(g.query_blocks(), g.heads);
  pool_rows_kernel<false><<<grid, pool_threads(g.head_dim), 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const __nv_bfloat16*>(q), q_row_stride, g.head_dim, g.query_block, g.query_tokens, g.tokens_per_frame,
      g.blocks_per_frame(), g.query_blocks(), pooled_queries);
  LF_CUDA_LAUNCH_CHECK("pool_queries: {} query blocks x {} heads", g.query_blocks(), g.heads);
}

void pool_keys(const void* k, int64_t k_row_stride, const PlannerGeometry& g, float* pooled_keys,
               float* pooled_frame_keys, void* stream) {
  check_geometry(g);
  check_rows_view(k, k_row_stride, g, "k");
  LF_CHECK(pooled_keys != nullptr, "sparse planner: pooled_keys is null");
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  pool_rows_kernel<true><<<dim3(g.key_blocks(), g.heads), pool_threads(g.head_dim), 0, cuda_stream>>>(
      static_cast<const __nv_bfloat16*>(k), k_row_stride, g.head_dim, g.key_block, g.query_tokens, g.tokens_per_frame,
      g.blocks_per_frame(), g.key_blocks(), pooled_keys);
  LF_CUDA_LAUNCH_CHECK("pool_keys: {} key blocks x {} heads", g.key_blocks(), g.heads);
  if (pooled_frame_keys == nullptr) return;
  pool_frames_kernel<<<dim3(g.key_frames, g.heads), g.head_dim, 0, cuda_stream>>>(
      pooled_keys, g.head_dim, g.key_block, g.tokens_per_frame, g.blocks_per_frame(), g.key_frames, pooled_frame_keys);
  LF_CUDA_LAUNCH_CHECK("pool_keys: {} frames x {} heads", g.key_frames, g.heads);
}

void block_scores(const float* pooled_queries, const float* pooled_keys, int heads, int query_blocks, int key_count,
                  int head_dim, float* scores, void* stream) {
  LF_CHECK(pooled_queries != nullptr && pooled_keys != nullptr && scores != nullptr, "block_scores: a pointer is null");
  LF_CHECK(heads > 0 && heads <= 65535 && query_blocks > 0 && key_count > 0,
           "block_scores: heads {} query_blocks {} key_count {}", heads, query_blocks, key_count);
  LF_CHECK(head_dim > 0 && head_dim <= kMaxHeadDim, "block_scores: head_dim {} (1..{})", head_dim, kMaxHeadDim);
  const dim3 grid((key_count + kScoreKeysPerCta - 1) / kScoreKeysPerCta, heads);
  const size_t shared = size_t(kScoreKeysPerCta) * (head_dim + 1) * sizeof(float);  // <= 32.9 KB
  block_scores_kernel<<<grid, kScoreThreads, shared, static_cast<cudaStream_t>(stream)>>>(
      pooled_queries, pooled_keys, query_blocks, key_count, head_dim, scores);
  LF_CUDA_LAUNCH_CHECK("block_scores: {} x {} x {} (head_dim {})", heads, query_blocks, key_count, head_dim);
}

// ---- whole planners -------------------------------------------------------------------------------------------

size_t planner_workspace_bytes(const PlannerGeometry& g) {
  check_geometry(g);
  const size_t d = size_t(g.head_dim), rows = size_t(g.rows());
  return align_up(size_t(g.heads) * g.query_blocks() * d * 4) + align_up(size_t(g.heads) * g.key_blocks() * d * 4) +
         align_up(size_t(g.heads) * g.key_frames * d * 4) + align_up(rows * g.key_blocks() * 4) +
         align_up(rows * g.key_frames * 4) + align_up(select_topp_workspace_bytes(g.rows(), g.key_blocks()));
}

PlannerBuffers planner_buffers(void* workspace, const PlannerGeometry& g) {
  check_geometry(g);
  const size_t d = size_t(g.head_dim), rows = size_t(g.rows());
  char* cursor = static_cast<char*>(workspace);
  auto take = [&](size_t bytes) {
    char* part = cursor;
    cursor += align_up(bytes);
    return part;
  };
  PlannerBuffers b;
  b.pooled_queries = reinterpret_cast<float*>(take(size_t(g.heads) * g.query_blocks() * d * 4));
  b.pooled_keys = reinterpret_cast<float*>(take(size_t(g.heads) * g.key_blocks() * d * 4));
  b.pooled_frame_keys = reinterpret_cast<float*>(take(size_t(g.heads) * g.key_frames * d * 4));
  b.scores = reinterpret_cast<float*>(take(rows * g.key_blocks() * 4));
  b.frame_scores = reinterpret_cast<float*>(take(rows * g.key_frames * 4));
  b.topp_scratch_bytes = select_topp_workspace_bytes(g.rows(), g.key_blocks());
  b.topp_scratch = take(b.topp_scratch_bytes);
  return b;
}

int64_t planner_max_selected(const PlannerGeometry& g) { return int64_t(g.rows()) * g.key_blocks(); }

namespace {

PlannerBuffers pool_and_score(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride,
                              const PlannerGeometry& g, bool frames, void* workspace, size_t workspace_bytes,
                              void* stream) {
  const size_t needed = planner_workspace_bytes(g);
  LF_CHECK(workspace != nullptr && workspace_bytes >= needed,
           "sparse planner: workspace of {} bytes, {} needed (planner_workspace_bytes)", workspace_bytes, needed);
  const PlannerBuffers b = planner_buffers(workspace, g);
  pool_queries(q, q_row_stride, g, b.pooled_queries, stream);
  pool_keys(k, k_row_stride, g, b.pooled_keys, frames ? b.pooled_frame_keys : nullptr, stream);
  block_scores(b.pooled_queries, b.pooled_keys, g.heads, g.query_blocks(), g.key_blocks(), g.head_dim, b.scores,
               stream);
  if (frames)
    block_scores(b.pooled_queries, b.pooled_frame_keys, g.heads, g.query_blocks(), g.key_frames, g.head_dim,
                 b.frame_scores, stream);
  return b;
}

}  // namespace

void plan_topk(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride, const PlannerGeometry& g,
               int topk, void* workspace, size_t workspace_bytes, const MaskOutput& out, void* stream) {
  const PlannerBuffers b =
      pool_and_score(q, q_row_stride, k, k_row_stride, g, false, workspace, workspace_bytes, stream);
  select_topk(b.scores, g.rows(), g.key_blocks(), topk, out, stream);
}

void plan_hsa(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride, const PlannerGeometry& g,
              const HsaParams& hsa, void* workspace, size_t workspace_bytes, const MaskOutput& out, void* stream) {
  (void)hsa_eligible_blocks(g, hsa);  // refuses a bad configuration before any launch
  const PlannerBuffers b =
      pool_and_score(q, q_row_stride, k, k_row_stride, g, true, workspace, workspace_bytes, stream);
  select_hsa(b.scores, b.frame_scores, g, hsa, out, stream);
}

void plan_topp(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride, const PlannerGeometry& g,
               float scale, float p, void* workspace, size_t workspace_bytes, const MaskOutput& out, void* stream) {
  const PlannerBuffers b =
      pool_and_score(q, q_row_stride, k, k_row_stride, g, false, workspace, workspace_bytes, stream);
  select_topp(b.scores, g.rows(), g.key_blocks(), scale, p, out, b.topp_scratch, b.topp_scratch_bytes, stream);
}

}  // namespace lf::gpu::sparse
