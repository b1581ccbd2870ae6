// Mean pooling of q/k into blocks and frames, pooled block scores, and the whole planners (pool -> score ->
// select) with their one workspace. Selection kernels: sparse_select.cu.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "core/error.h"
#include "kernels/cuda_check.h"
#include "kernels/sparse/sparse_launch.cuh"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_pool_segments.cuh"
#include "kernels/sparse/sparse_select_detail.h"
#include "kernels/sparse/sparse_select_device.cuh"

namespace lf::gpu::sparse {

namespace {

// tuned: threads per pooling CTA. A CTA pools one (block, head): head_dim / 8 lanes of 16-byte loads across the
// row, the rest of the threads over tokens, so each block's 64-128 rows stream in a few wide waves.
constexpr int kPoolThreads = 256;
// Key blocks per scoring CTA: one per lane, so a warp writes 32 consecutive scores of a row.
constexpr int kScoreKeysPerCta = 32;
constexpr int kScoreThreads = 256;
constexpr int kMaxHeadDim = 256;

using detail::key_segment;
using detail::query_segment;
using detail::Segment;

// One pooling launch: the query blocks [0, query_blocks) of q, then the key blocks [first_key_block, key_blocks)
// of k (either part may be empty). The separate pool_queries / pool_keys entry points and the cached planner's
// fused "queries + new key blocks" launch are all this kernel, so their pooled values are the same bits.
struct PoolJob {
  const __nv_bfloat16* q;
  int64_t q_row_stride;
  int query_block, query_tokens, query_blocks;
  float* pooled_queries;  // [heads, query_blocks, head_dim]
  const __nv_bfloat16* k;
  int64_t k_row_stride;
  int key_block, tokens_per_frame, blocks_per_frame, first_key_block, key_block_end, key_blocks;
  float* pooled_keys;  // [heads, key_stride, head_dim]; blocks [first_key_block, key_block_end) are pooled
  int key_stride;      // blocks per head in pooled_keys (>= key_blocks)
  int head_dim;
};

// Rows each thread has in flight before it accumulates: a 128-row block is 8 rows per thread (head_dim 128), and
// issuing them together instead of one dependent load at a time is what lets pooling approach HBM bandwidth.
constexpr int kPoolRowsInFlight = 8;

// out[head, segment, :] = mean of the segment's rows of one head. blockDim.x = lanes * token_lanes, with
// lanes = head_dim / 8 (one 16-byte vector of 8 bf16 each). Every thread adds its rows in increasing order, so
// the loads in flight do not change the sums.
__global__ void __launch_bounds__(kPoolThreads) pool_rows_kernel(const PoolJob job) {
  __shared__ float partial[kPoolThreads * 8];
  const int head = blockIdx.y, head_dim = job.head_dim;
  const bool is_query = int(blockIdx.x) < job.query_blocks;
  const int segment = is_query ? int(blockIdx.x) : job.first_key_block + int(blockIdx.x) - job.query_blocks;
  const Segment seg = is_query ? query_segment(segment, job.query_block, job.query_tokens)
                               : key_segment(segment, job.key_block, job.tokens_per_frame, job.blocks_per_frame);
  const __nv_bfloat16* src = is_query ? job.q : job.k;
  const int64_t row_stride = is_query ? job.q_row_stride : job.k_row_stride;
  const int lanes = head_dim / 8;
  const int token_lanes = blockDim.x / lanes;
  const int lane = threadIdx.x % lanes, token_lane = threadIdx.x / lanes;
  detail::wait_for_previous_grid();  // q / k may come from the kernel before; the cache is read by the last plan
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  const __nv_bfloat16* column = src + int64_t(head) * head_dim + lane * 8;
  for (int base = token_lane; base < seg.count; base += kPoolRowsInFlight * token_lanes) {
    uint4 packed[kPoolRowsInFlight];
#pragma unroll
    for (int u = 0; u < kPoolRowsInFlight; ++u) {
      const int t = base + u * token_lanes;
      packed[u] = t < seg.count ? __ldg(reinterpret_cast<const uint4*>(column + int64_t(seg.first + t) * row_stride))
                                : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kPoolRowsInFlight; ++u) {
      if (base + u * token_lanes >= seg.count) break;
      const __nv_bfloat162* pairs = reinterpret_cast<const __nv_bfloat162*>(&packed[u]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 values = __bfloat1622float2(pairs[e]);
        acc[2 * e] += values.x;
        acc[2 * e + 1] += values.y;
      }
    }
  }
  detail::allow_next_grid();
#pragma unroll
  for (int e = 0; e < 8; ++e) partial[token_lane * head_dim + lane * 8 + e] = acc[e];
  __syncthreads();
  float* out = is_query ? job.pooled_queries + (int64_t(head) * job.query_blocks + segment) * head_dim
                        : job.pooled_keys + (int64_t(head) * job.key_stride + segment) * head_dim;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.f;
    for (int t = 0; t < token_lanes; ++t) sum += partial[t * head_dim + d];
    out[d] = sum / float(seg.count);
  }
}

// Frame key = mean of the frame's keys = sum over its blocks of (block mean x block length) / tokens_per_frame,
// the blocks added in order. The loads of a batch are issued before its additions: a frame of 13-25 blocks is a
// few load latencies instead of one per block (the sums are unchanged).
constexpr int kFrameLoadsInFlight = 8;
__device__ __forceinline__ float frame_key_value(const detail::KeySource& keys, int head, int frame, int d,
                                                 int head_dim, int key_block, int tokens_per_frame,
                                                 int blocks_per_frame) {
  float sum = 0.f;
  for (int base = 0; base < blocks_per_frame; base += kFrameLoadsInFlight) {
    float block_mean[kFrameLoadsInFlight];
#pragma unroll
    for (int u = 0; u < kFrameLoadsInFlight; ++u)
      block_mean[u] = base + u < blocks_per_frame
                          ? detail::key_row(keys, head, frame * blocks_per_frame + base + u, head_dim)[d]
                          : 0.f;
#pragma unroll
    for (int u = 0; u < kFrameLoadsInFlight; ++u) {
      const int i = base + u;
      if (i >= blocks_per_frame) break;
      const int length = frame_blocks::in_frame_block_length(i, tokens_per_frame, key_block);
      sum = __fmaf_rn(block_mean[u], float(length), sum);
    }
  }
  return sum / float(tokens_per_frame);
}

// One frame key element per thread. Its own launch (also in the cached planner) because forming frame keys inside
// the score kernel put up to 16 elements x 25 dependent block loads on a few CTAs per head, repeated for every
// query group: the tail of the score launch.
__global__ void pool_frames_kernel(const detail::KeySource keys, int head_dim, int key_block, int tokens_per_frame,
                                   int blocks_per_frame, int key_frames, float* pooled_frame_keys) {
  const int frame = blockIdx.x, head = blockIdx.y;
  detail::wait_for_previous_grid();  // the pooled blocks come from the pooling launch
  detail::allow_next_grid();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    pooled_frame_keys[(int64_t(head) * key_frames + frame) * head_dim + d] =
        frame_key_value(keys, head, frame, d, head_dim, key_block, tokens_per_frame, blocks_per_frame);
}

// Scores of `stored` pooled keys per head ([heads, stored, head_dim]) and, after them, of `frames` pooled frame
// keys (HSA's frame stage in the same launch): scores[h, qb, j], row stride stored + frames.
struct ScoreJob {
  const float* queries;     // [heads, query_blocks, head_dim]
  detail::KeySource keys;   // `stored` blocks per head
  const float* frame_keys;  // [heads, frames, head_dim]; frames > 0 only
  int query_blocks, stored, frames, head_dim;
  float* scores;
};

// A tile of kScoreKeysPerCta keys in shared memory (rows padded by one float: lane j reads row j, and an
// unpadded 128-float stride would put all 32 lanes in one bank); each warp scores one query block of the CTA's
// group (blockIdx.z). Why one: with the warps walking all 37 query blocks, the launch was 120 CTAs of five
// sequential 128-step dot-product chains per warp; grouping spreads the same work over 5x the CTAs.
__global__ void __launch_bounds__(kScoreThreads) block_scores_kernel(const ScoreJob job) {
  extern __shared__ float key_tile[];  // [kScoreKeysPerCta][head_dim + 1]
  const int first_key = blockIdx.x * kScoreKeysPerCta, head = blockIdx.y, head_dim = job.head_dim;
  const int key_count = job.stored + job.frames;
  const int stride = head_dim + 1;
  detail::wait_for_previous_grid();  // the pooled blocks come from the pooling launch
  for (int i = threadIdx.x; i < kScoreKeysPerCta * head_dim; i += blockDim.x) {
    const int row = i / head_dim, d = i % head_dim, key = first_key + row;
    float value = 0.f;
    if (key < job.stored)
      value = detail::key_row(job.keys, head, key, head_dim)[d];
    else if (key < key_count)
      value = job.frame_keys[(int64_t(head) * job.frames + key - job.stored) * head_dim + d];
    key_tile[row * stride + d] = value;
  }
  __syncthreads();
  detail::allow_next_grid();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  const float* own_key = key_tile + lane * stride;
  for (int qb = blockIdx.z * warps + warp; qb < min(job.query_blocks, int(blockIdx.z + 1) * warps); qb += warps) {
    const float* query = job.queries + (int64_t(head) * job.query_blocks + qb) * head_dim;
    float dot = 0.f;
    for (int d = 0; d < head_dim; ++d) dot = __fmaf_rn(__ldg(query + d), own_key[d], dot);
    if (first_key + lane < key_count)
      job.scores[(int64_t(head) * job.query_blocks + qb) * key_count + first_key + lane] = dot;
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

namespace {

PoolJob pool_job(const PlannerGeometry& g) {
  PoolJob job{};
  job.query_block = g.query_block;
  job.query_tokens = g.query_tokens;
  job.key_block = g.key_block;
  job.tokens_per_frame = g.tokens_per_frame;
  job.blocks_per_frame = g.blocks_per_frame();
  job.key_blocks = g.key_blocks();
  job.key_block_end = job.key_blocks;
  job.key_stride = job.key_blocks;
  job.head_dim = g.head_dim;
  return job;
}

detail::KeySource whole_keys(const float* pooled_keys, const PlannerGeometry& g) {
  return {pooled_keys, nullptr, g.key_blocks(), g.key_blocks(), g.key_blocks()};
}

void launch_pool(const PoolJob& job, int heads, cudaStream_t stream) {
  const int segments = job.query_blocks + (job.key_block_end - job.first_key_block);
  if (segments == 0) return;
  detail::launch_dependent(pool_rows_kernel, dim3(segments, heads), dim3(pool_threads(job.head_dim)), 0, stream, job);
  LF_CUDA_LAUNCH_CHECK("sparse pooling: {} query blocks + {} key blocks x {} heads", job.query_blocks,
                       job.key_block_end - job.first_key_block, heads);
}

void launch_frames(const detail::KeySource& keys, const PlannerGeometry& g, float* pooled_frame_keys,
                   cudaStream_t stream) {
  detail::launch_dependent(pool_frames_kernel, dim3(g.key_frames, g.heads), dim3(g.head_dim), 0, stream, keys,
                           g.head_dim, g.key_block, g.tokens_per_frame, g.blocks_per_frame(), g.key_frames,
                           pooled_frame_keys);
  LF_CUDA_LAUNCH_CHECK("pool frames: {} frames x {} heads", g.key_frames, g.heads);
}

void launch_scores(const ScoreJob& job, int heads, cudaStream_t stream) {
  const int key_count = job.stored + job.frames;
  constexpr int kQueryBlocksPerCta = kScoreThreads / 32;
  const dim3 grid((key_count + kScoreKeysPerCta - 1) / kScoreKeysPerCta, heads,
                  (job.query_blocks + kQueryBlocksPerCta - 1) / kQueryBlocksPerCta);
  const size_t shared = size_t(kScoreKeysPerCta) * (job.head_dim + 1) * sizeof(float);  // <= 32.9 KB
  detail::launch_dependent(block_scores_kernel, grid, dim3(kScoreThreads), shared, stream, job);
  LF_CUDA_LAUNCH_CHECK("block_scores: {} x {} x {} (head_dim {})", heads, job.query_blocks, key_count, job.head_dim);
}

}  // namespace

void pool_queries(const void* q, int64_t q_row_stride, const PlannerGeometry& g, float* pooled_queries, void* stream) {
  check_geometry(g);
  check_rows_view(q, q_row_stride, g, "q");
  LF_CHECK(pooled_queries != nullptr, "sparse planner: pooled_queries is null");
  PoolJob job = pool_job(g);
  job.q = static_cast<const __nv_bfloat16*>(q);
  job.q_row_stride = q_row_stride;
  job.query_blocks = g.query_blocks();
  job.pooled_queries = pooled_queries;
  job.first_key_block = job.key_blocks;  // no key blocks
  launch_pool(job, g.heads, static_cast<cudaStream_t>(stream));
}

void pool_keys(const void* k, int64_t k_row_stride, const PlannerGeometry& g, float* pooled_keys,
               float* pooled_frame_keys, void* stream) {
  check_geometry(g);
  check_rows_view(k, k_row_stride, g, "k");
  LF_CHECK(pooled_keys != nullptr, "sparse planner: pooled_keys is null");
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  PoolJob job = pool_job(g);
  job.k = static_cast<const __nv_bfloat16*>(k);
  job.k_row_stride = k_row_stride;
  job.pooled_keys = pooled_keys;
  launch_pool(job, g.heads, cuda_stream);
  if (pooled_frame_keys == nullptr) return;
  launch_frames(whole_keys(pooled_keys, g), g, pooled_frame_keys, cuda_stream);
}

void block_scores(const float* pooled_queries, const float* pooled_keys, int heads, int query_blocks, int key_count,
                  int head_dim, float* scores, void* stream) {
  LF_CHECK(pooled_queries != nullptr && pooled_keys != nullptr && scores != nullptr, "block_scores: a pointer is null");
  LF_CHECK(heads > 0 && heads <= 65535 && query_blocks > 0 && key_count > 0,
           "block_scores: heads {} query_blocks {} key_count {}", heads, query_blocks, key_count);
  LF_CHECK(head_dim > 0 && head_dim <= kMaxHeadDim, "block_scores: head_dim {} (1..{})", head_dim, kMaxHeadDim);
  ScoreJob job{};
  job.queries = pooled_queries;
  job.keys = detail::KeySource{pooled_keys, nullptr, key_count, key_count, key_count};
  job.query_blocks = query_blocks;
  job.stored = key_count;
  job.head_dim = head_dim;
  job.scores = scores;
  launch_scores(job, heads, static_cast<cudaStream_t>(stream));
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
  (void)detail::check_hsa_budget(g, hsa);  // refuses a bad configuration or budget before any launch
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

// ---- cached planners ------------------------------------------------------------------------------------------

size_t cached_planner_workspace_bytes(const PlannerGeometry& g) {
  check_geometry(g);
  const size_t rows = size_t(g.rows());
  return align_up(size_t(g.heads) * g.query_blocks() * g.head_dim * 4) +
         align_up(rows * (g.key_blocks() + g.key_frames) * 4) + align_up(size_t(g.heads) * g.key_frames * g.head_dim * 4) +
         align_up(select_topp_workspace_bytes(g.rows(), g.key_blocks()));
}

namespace {

struct CachedBuffers {
  float* pooled_queries;   // the workspace's (written by the pool launch)
  const float* queries;    // what the scores read: the given pooled queries, else pooled_queries
  detail::KeySource keys;  // the cache, and the given blocks when set
  float* scores;  // [rows, key_blocks (+ key_frames for HSA)]
  float* frame_keys;  // HSA: [heads, key_frames, head_dim]
  void* topp_scratch;
  size_t topp_scratch_bytes;
};

CachedBuffers cached_buffers(const CachedPlanInputs& in) {
  const PlannerGeometry& g = in.geometry;
  check_geometry(g);
  check_rows_view(in.q, in.q_row_stride, g, "q");
  check_rows_view(in.k, in.k_row_stride, g, "k");
  LF_CHECK(in.pooled_keys != nullptr, "sparse planner: the pooled-key cache is null");
  LF_CHECK(in.pooled_keys_stride == 0 || in.pooled_keys_stride >= g.key_blocks(),
           "sparse planner: pooled-key cache stride {} below {} key blocks", in.pooled_keys_stride, g.key_blocks());
  LF_CHECK(in.first_new_frame >= 0 && in.first_new_frame <= g.key_frames,
           "sparse planner: first_new_frame {} outside 0..{} key frames", in.first_new_frame, g.key_frames);
  LF_CHECK(in.given_key_blocks == nullptr ||
               (in.given_first_frame >= in.first_new_frame && in.given_first_frame <= g.key_frames),
           "sparse planner: given key blocks from frame {} (first_new_frame {}, key frames {})", in.given_first_frame,
           in.first_new_frame, g.key_frames);
  const size_t needed = cached_planner_workspace_bytes(g);
  LF_CHECK(in.workspace != nullptr && in.workspace_bytes >= needed,
           "sparse planner: workspace of {} bytes, {} needed (cached_planner_workspace_bytes)", in.workspace_bytes,
           needed);
  char* cursor = static_cast<char*>(in.workspace);
  CachedBuffers b;
  b.pooled_queries = reinterpret_cast<float*>(cursor);
  cursor += align_up(size_t(g.heads) * g.query_blocks() * g.head_dim * 4);
  b.queries = in.given_pooled_queries != nullptr ? in.given_pooled_queries : b.pooled_queries;
  b.scores = reinterpret_cast<float*>(cursor);
  cursor += align_up(size_t(g.rows()) * (g.key_blocks() + g.key_frames) * 4);
  b.frame_keys = reinterpret_cast<float*>(cursor);
  cursor += align_up(size_t(g.heads) * g.key_frames * g.head_dim * 4);
  b.topp_scratch = cursor;
  b.topp_scratch_bytes = select_topp_workspace_bytes(g.rows(), g.key_blocks());
  b.keys = whole_keys(in.pooled_keys, g);
  b.keys.cached_stride = in.pooled_keys_stride > 0 ? in.pooled_keys_stride : g.key_blocks();
  if (in.given_key_blocks != nullptr) {
    b.keys.given = in.given_key_blocks;
    b.keys.given_first = in.given_first_frame * g.blocks_per_frame();
  }
  return b;
}

// Launch 1: the queries and the key blocks of frames [first_new_frame, key_frames) in one grid, less what was
// given (nothing at all on a chunk's later calls with both given: no launch).
void cached_pool(const CachedPlanInputs& in, const CachedBuffers& b, cudaStream_t stream) {
  const PlannerGeometry& g = in.geometry;
  PoolJob pool = pool_job(g);
  pool.q = static_cast<const __nv_bfloat16*>(in.q);
  pool.q_row_stride = in.q_row_stride;
  pool.query_blocks = in.given_pooled_queries != nullptr ? 0 : g.query_blocks();
  pool.pooled_queries = b.pooled_queries;
  pool.key_block_end = b.keys.given_first;
  pool.k = static_cast<const __nv_bfloat16*>(in.k);
  pool.k_row_stride = in.k_row_stride;
  pool.first_key_block = in.first_new_frame * g.blocks_per_frame();
  pool.pooled_keys = in.pooled_keys;
  pool.key_stride = b.keys.cached_stride;
  launch_pool(pool, g.heads, stream);
}

// Launch 2 (HSA: 2 and 3): the frame keys from the pooled blocks, then the scores of every stored block and of
// every frame.
void cached_scores(const CachedPlanInputs& in, const CachedBuffers& b, bool frames, cudaStream_t stream) {
  const PlannerGeometry& g = in.geometry;
  if (frames) launch_frames(b.keys, g, b.frame_keys, stream);
  ScoreJob score{};
  score.queries = b.queries;
  score.keys = b.keys;
  score.frame_keys = b.frame_keys;
  score.query_blocks = g.query_blocks();
  score.stored = g.key_blocks();
  score.frames = frames ? g.key_frames : 0;
  score.head_dim = g.head_dim;
  score.scores = b.scores;
  launch_scores(score, g.heads, stream);
}

// The fused path's last launch: scores of every block (and HSA frame) and the selection, from the pooled data.
void cached_fused_select(const CachedPlanInputs& in, const CachedBuffers& b, const detail::CachedRule& rule,
                         const MaskOutput& out, cudaStream_t stream) {
  const PlannerGeometry& g = in.geometry;
  LF_CHECK(out.row_offsets != nullptr && out.key_indices != nullptr,
           "sparse planner: row_offsets and key_indices are needed");
  const bool hsa = rule.kind == detail::CachedRule::Hsa;
  const int topk = hsa ? rule.hsa.topk : rule.topk;
  LF_CHECK(int64_t(g.rows()) * topk < (int64_t(1) << 31), "sparse planner: {} rows x {} overflow int offsets",
           g.rows(), topk);
  detail::FusedSelectArgs a;
  a.queries = b.queries;
  a.keys = b.keys;
  a.frame_keys = hsa ? b.frame_keys : nullptr;
  a.heads = g.heads;
  a.query_blocks = g.query_blocks();
  a.key_blocks = g.key_blocks();
  a.head_dim = g.head_dim;
  a.topk = topk;
  if (hsa) detail::set_hsa_rule(a, g, rule.hsa);
  a.row_offsets = out.row_offsets;
  a.key_indices = out.key_indices;
  a.selected_scores = out.selected_scores;
  detail::launch_fused_score_select(a, stream, hsa ? "select_hsa" : "select_topk");
}

}  // namespace

void detail::plan_cached_phases(const CachedPlanInputs& in, const CachedRule& rule, unsigned phases,
                                const MaskOutput& out, void* stream) {
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  const PlannerGeometry& g = in.geometry;
  // Rule arguments are refused before any launch (the selectors would refuse them only after pooling).
  if (rule.kind == CachedRule::TopK)
    LF_CHECK(rule.topk >= 0 && rule.topk <= g.key_blocks(), "select_topk: topk {} outside 0..{} key blocks", rule.topk,
             g.key_blocks());
  if (rule.kind == CachedRule::Hsa) (void)check_hsa_budget(g, rule.hsa);
  if (rule.kind == CachedRule::TopP) {
    LF_CHECK(std::isfinite(rule.scale) && rule.scale > 0.f, "select_topp: scale {} must be finite and positive",
             rule.scale);
    LF_CHECK(rule.p > 0.f && rule.p <= 1.f, "select_topp: p {} outside (0, 1]", rule.p);
  }
  const CachedBuffers b = cached_buffers(in);
  if (phases & kCachedPool) cached_pool(in, b, cuda_stream);
  const bool hsa = rule.kind == CachedRule::Hsa;
  const PlannerPaths paths = planner_paths();
  if (rule.kind != CachedRule::TopP && paths.fused_score_select && paths.radix_select &&
      fused_score_select_fits(g.key_blocks(), hsa ? g.key_frames : 0, g.head_dim)) {
    if ((phases & kCachedScores) && hsa) launch_frames(b.keys, g, b.frame_keys, cuda_stream);
    if (phases & kCachedSelect) cached_fused_select(in, b, rule, out, cuda_stream);
    return;
  }
  if (phases & kCachedScores) cached_scores(in, b, hsa, cuda_stream);
  if (!(phases & kCachedSelect)) return;
  if (rule.kind == CachedRule::TopK) select_topk(b.scores, g.rows(), g.key_blocks(), rule.topk, out, stream);
  if (rule.kind == CachedRule::Hsa)
    select_hsa_strided(b.scores, b.scores + g.key_blocks(), int64_t(g.key_blocks()) + g.key_frames, g, rule.hsa, out,
                       stream);
  if (rule.kind == CachedRule::TopP)
    select_topp(b.scores, g.rows(), g.key_blocks(), rule.scale, rule.p, out, b.topp_scratch, b.topp_scratch_bytes,
                stream);
}

void store_given_key_blocks(const CachedPlanInputs& in, void* stream) {
  const PlannerGeometry& g = in.geometry;
  check_geometry(g);
  LF_CHECK(in.pooled_keys != nullptr && in.given_key_blocks != nullptr &&
               in.given_first_frame >= 0 && in.given_first_frame <= g.key_frames,
           "store_given_key_blocks: needs the cache and given blocks from a frame in 0..{} (got {})", g.key_frames,
           in.given_first_frame);
  const int stride = in.pooled_keys_stride > 0 ? in.pooled_keys_stride : g.key_blocks();
  LF_CHECK(stride >= g.key_blocks(), "store_given_key_blocks: stride {} below {} key blocks", stride, g.key_blocks());
  const int first = in.given_first_frame * g.blocks_per_frame(), count = g.key_blocks() - first;
  if (count == 0) return;
  const size_t row_bytes = size_t(g.head_dim) * sizeof(float);
  LF_CUDA_CHECK(cudaMemcpy2DAsync(in.pooled_keys + size_t(first) * g.head_dim, size_t(stride) * row_bytes,
                                  in.given_key_blocks, size_t(count) * row_bytes, size_t(count) * row_bytes,
                                  size_t(g.heads), cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
                "store_given_key_blocks: {} blocks x {} heads", count, g.heads);
}

void plan_topk_cached(const CachedPlanInputs& in, int topk, const MaskOutput& out, void* stream) {
  detail::CachedRule rule;
  rule.kind = detail::CachedRule::TopK;
  rule.topk = topk;
  detail::plan_cached_phases(in, rule, detail::kCachedAll, out, stream);
}

void plan_hsa_cached(const CachedPlanInputs& in, const HsaParams& hsa, const MaskOutput& out, void* stream) {
  detail::CachedRule rule;
  rule.kind = detail::CachedRule::Hsa;
  rule.hsa = hsa;
  detail::plan_cached_phases(in, rule, detail::kCachedAll, out, stream);
}

void plan_topp_cached(const CachedPlanInputs& in, float scale, float p, const MaskOutput& out, void* stream) {
  detail::CachedRule rule;
  rule.kind = detail::CachedRule::TopP;
  rule.scale = scale;
  rule.p = p;
  detail::plan_cached_phases(in, rule, detail::kCachedAll, out, stream);
}

}  // namespace lf::gpu::sparse
