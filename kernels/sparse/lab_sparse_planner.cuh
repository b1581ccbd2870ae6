#pragma once
// lab_sparse's planner breakdown: the engine's cached planner (plan_*_cached) timed launch group by launch group,
// for each implementation path, so one GPU run says where a call's time goes and what each change bought.
//   paths:  old    = bitonic-sort selection, plain launches (the planner before the radix select, except that
//                    HSA's frame keys have their own launch in every path; the pre-change planner is commit
//                    b54c4e3's lab_sparse, cached_step_queued_ms)
//           radix  = radix selection, plain launches
//           pdl    = radix selection, programmatic dependent launches (run 4's "new")
//           fused  = pdl with scores and selection of top-k / HSA in one launch (the default; top-p as pdl)
//   groups: pool (queries + the chunk's key blocks), scores (+ HSA frame scores), select (top-p: its three
//           launches), and the whole call; on the fused path scores is HSA's frame keys only and select the fused
//           launch. Each is queued 20 times back to back (per launch: what it costs
//           between other GPU work) and the median over `reps` taken; q/k rotate over sets larger than 3x the L2,
//           as in the engine, where the GEMMs between planner calls evict them. call_alone_ms is one call on an
//           idle GPU (adds the host's launch latency).
//   check:  every path's mask at the bench shape must equal the old path's bit for bit (indices and offsets).
// Shape: Lq 4680 (3 frames x 1560), Lk 4680 and 32760, 12 heads, head_dim 128, key blocks 64 and 128; top-k at
// 15% of the key blocks, HSA (short config) where past frames > keep_frames, top-p at p 0.9.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/lab_common.h"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_select_detail.h"

namespace lf::lab::planner {

struct BreakdownRow {
  int lk = 0, block = 0, topk = 0;
  std::string rule, path;
  double pool_ms = -1, scores_ms = -1, select_ms = -1;  // one launch group, per launch, queued
  double call_queued_ms = -1;                            // a later call of a chunk (its frames pooled), queued
  double call_alone_ms = -1;                             // the same call alone on an idle GPU
  double first_call_queued_ms = -1;                      // a chunk's first call (every frame pooled), queued
  bool identical = false;                                // mask equals the old path's
};

struct Buffer {
  void* ptr = nullptr;
  explicit Buffer(size_t bytes) { LF_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(bytes, 16)), "{} bytes", bytes); }
  ~Buffer() { cudaFree(ptr); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

__global__ void fill_uniform_bf16(__nv_bfloat16* out, size_t count, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x) {
    uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i + 1) * 0xbf58476d1ce4e5b9ull;
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    out[i] = __float2bfloat16(2.f * (float((x >> 40) & 0xffffff) / float(1 << 23) - 1.f));
  }
}

inline double median_of(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// launch(i) for consecutive i; median over `reps` of (events around `per_rep` launches) / per_rep.
inline double queued_ms(const std::function<void(int)>& launch, int per_rep, int reps, const std::string& what) {
  for (int i = 0; i < per_rep; ++i) launch(i);
  synchronize_or_die(what + " warm-up");
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    LF_CUDA_CHECK(cudaEventRecord(start), "event");
    for (int i = 0; i < per_rep; ++i) launch(r * per_rep + i);
    LF_CUDA_CHECK(cudaEventRecord(stop), "event");
    synchronize_or_die(what);
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "event");
    times.push_back(ms / float(per_rep));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median_of(times);
}

template <class T>
std::vector<T> fetch(const void* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) LF_CUDA_CHECK(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "fetch");
  return host;
}

// Rows for every (lk, block, rule, path); *mismatches counts masks that differ from the old path's.
inline std::vector<BreakdownRow> bench_breakdown(int reps, size_t l2_bytes, int* mismatches) {
  namespace sp = lf::gpu::sparse;
  constexpr int kLq = 4680, kHeads = 12, kDim = 128, kTokensPerFrame = 1560, kQueued = 20;
  struct Path {
    const char* name;
    sp::detail::PlannerPaths paths;
  };
  const Path paths[] = {{"old", {false, false, false}},
                        {"radix", {true, false, false}},
                        {"pdl", {true, true, false}},
                        {"fused", {true, true, true}}};
  const sp::detail::PlannerPaths saved = sp::detail::planner_paths();
  std::vector<BreakdownRow> rows;
  const int64_t row_elems = int64_t(kHeads) * kDim;
  for (int lk : {4680, 32760}) {
    const int frames = lk / kTokensPerFrame;
    sp::HsaParams hsa;  // short config: chunk 3, keep_frames 6, sink 1, near 2
    const int past = frames - hsa.chunk_frames;
    // What a later call reads (q and the chunk's keys); rotate over sets so that they come from HBM.
    const size_t read_bytes = size_t(kLq + hsa.chunk_frames * kTokensPerFrame) * row_elems * 2;
    const int sets = int(std::max<size_t>(2, (3 * l2_bytes + read_bytes - 1) / read_bytes));
    std::vector<std::unique_ptr<Buffer>> qs, ks;
    for (int s = 0; s < sets; ++s) {
      qs.push_back(std::make_unique<Buffer>(size_t(kLq) * row_elems * 2));
      ks.push_back(std::make_unique<Buffer>(size_t(lk) * row_elems * 2));
      fill_uniform_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(qs.back()->ptr), size_t(kLq) * row_elems,
                                       100 + s);
      fill_uniform_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(ks.back()->ptr), size_t(lk) * row_elems,
                                       200 + s);
    }
    synchronize_or_die("breakdown inputs");
    for (int block : {64, 128}) {
      sp::PlannerGeometry g;
      g.heads = kHeads;
      g.head_dim = kDim;
      g.query_tokens = kLq;
      g.query_block = g.key_block = block;
      g.key_frames = frames;
      g.tokens_per_frame = kTokensPerFrame;
      const size_t workspace_bytes = sp::cached_planner_workspace_bytes(g);
      Buffer workspace(workspace_bytes), pooled(size_t(kHeads) * g.key_blocks() * kDim * 4);
      Buffer offsets(size_t(g.rows() + 1) * 4), indices(size_t(sp::planner_max_selected(g)) * 4);
      const sp::MaskOutput out{static_cast<int*>(offsets.ptr), static_cast<int*>(indices.ptr), nullptr};
      sp::CachedPlanInputs in;
      in.q_row_stride = in.k_row_stride = row_elems;
      in.geometry = g;
      in.pooled_keys = static_cast<float*>(pooled.ptr);
      in.workspace = workspace.ptr;
      in.workspace_bytes = workspace_bytes;
      const int topk = int(0.15 * g.key_blocks());
      hsa.topk = std::min(topk, sp::hsa_eligible_blocks(g, hsa));
      for (int rule_index = 0; rule_index < 3; ++rule_index) {
        sp::detail::CachedRule rule;
        rule.kind = rule_index == 0 ? sp::detail::CachedRule::TopK
                    : rule_index == 1 ? sp::detail::CachedRule::Hsa
                                      : sp::detail::CachedRule::TopP;
        if (rule.kind == sp::detail::CachedRule::Hsa && past <= hsa.keep_frames) continue;  // the engine's dispatch
        rule.topk = topk;
        rule.hsa = hsa;
        rule.scale = 1.f / std::sqrt(float(kDim));
        rule.p = 0.9f;
        const char* rule_name = rule_index == 0 ? "topk" : rule_index == 1 ? "hsa" : "topp";
        std::vector<int> old_offsets, old_indices;
        for (const Path& path : paths) {
          sp::detail::set_planner_paths(path.paths);
          auto plan = [&](int i, unsigned phases, int first_new_frame) {
            in.q = qs[size_t(i % sets)]->ptr;
            in.k = ks[size_t(i % sets)]->ptr;
            in.first_new_frame = first_new_frame;
            sp::detail::plan_cached_phases(in, rule, phases, out, nullptr);
          };
          const std::string what = fmt::format("breakdown lk {} block {} {} {}", lk, block, rule_name, path.name);
          plan(0, sp::detail::kCachedAll, 0);
          synchronize_or_die(what + " mask");
          const auto got_offsets = fetch<int>(offsets.ptr, size_t(g.rows() + 1));
          const auto got_indices = fetch<int>(indices.ptr, size_t(got_offsets.back()));
          BreakdownRow r;
          r.lk = lk;
          r.block = block;
          r.topk = rule.kind == sp::detail::CachedRule::Hsa ? hsa.topk : rule.kind == sp::detail::CachedRule::TopK ? topk : 0;
          r.rule = rule_name;
          r.path = path.name;
          if (old_offsets.empty()) {
            old_offsets = got_offsets;
            old_indices = got_indices;
          }
          r.identical = got_offsets == old_offsets && got_indices == old_indices;
          if (!r.identical) ++*mismatches;
          using sp::detail::kCachedAll;
          r.pool_ms = queued_ms([&](int i) { plan(i, sp::detail::kCachedPool, past); }, kQueued, reps, what + " pool");
          r.scores_ms = queued_ms([&](int i) { plan(i, sp::detail::kCachedScores, past); }, kQueued, reps,
                                  what + " scores");
          r.select_ms = queued_ms([&](int i) { plan(i, sp::detail::kCachedSelect, past); }, kQueued, reps,
                                  what + " select");
          r.call_queued_ms = queued_ms([&](int i) { plan(i, kCachedAll, past); }, kQueued, reps, what + " call");
          r.call_alone_ms = queued_ms([&](int i) { plan(i, kCachedAll, past); }, 1, reps, what + " call alone");
          r.first_call_queued_ms = queued_ms([&](int i) { plan(i, kCachedAll, 0); }, kQueued, reps, what + " first");
          rows.push_back(r);
        }
      }
    }
  }
  sp::detail::set_planner_paths(saved);
  return rows;
}

inline void print_breakdown(const std::vector<BreakdownRow>& rows) {
  std::printf("%5s %5s %4s %5s %4s | %8s %8s %8s | %8s %8s %8s | %s\n", "lk", "block", "rule", "path", "topk",
              "pool", "scores", "select", "call_q", "alone", "first_q", "mask");
  for (const BreakdownRow& r : rows)
    std::printf("%5d %5d %4s %5s %4d | %8.4f %8.4f %8.4f | %8.4f %8.4f %8.4f | %s\n", r.lk, r.block, r.rule.c_str(),
                r.path.c_str(), r.topk, r.pool_ms, r.scores_ms, r.select_ms, r.call_queued_ms, r.call_alone_ms,
                r.first_call_queued_ms, r.identical ? "= old" : "DIFFERS");
  std::printf("(ms per launch group / call; _q = 20 queued back to back, median)\n");
}

// The JSON member `"planner_breakdown_rows": [...]` (no separators around it).
inline void write_breakdown_json(FILE* f, const std::vector<BreakdownRow>& rows) {
  std::fprintf(f, "\"planner_breakdown_rows\": [");
  for (size_t i = 0; i < rows.size(); ++i) {
    const BreakdownRow& r = rows[i];
    std::fprintf(f,
                 "%s\n    {\"lk\": %d, \"block\": %d, \"rule\": \"%s\", \"path\": \"%s\", \"topk\": %d, "
                 "\"pool_ms\": %.4f, \"scores_ms\": %.4f, \"select_ms\": %.4f, \"call_queued_ms\": %.4f, "
                 "\"call_alone_ms\": %.4f, \"first_call_queued_ms\": %.4f, \"mask_equals_old\": %s}",
                 i ? "," : "", r.lk, r.block, r.rule.c_str(), r.path.c_str(), r.topk, r.pool_ms, r.scores_ms,
                 r.select_ms, r.call_queued_ms, r.call_alone_ms, r.first_call_queued_ms,
                 r.identical ? "true" : "false");
  }
  std::fprintf(f, "\n  ]");
}

}  // namespace lf::lab::planner
