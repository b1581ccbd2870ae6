// Lab for block-sparse flash attention and the GPU mask planners (llm.c dev/cuda style): checks, then times them
// against the dense kernel in the same run. It calls the public APIs, so what is checked is what the engine runs.
//
//   lab_sparse [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--planner-only] [--reps N] [--quick]
//   lab_sparse --trace   (the Hopper kernel's per-item phase times, from in-kernel clock stamps)
//
// --planner-only: the planner checks and the cached planner's per-launch breakdown (lab_sparse_planner.cuh,
// JSON "planner_breakdown_rows"), no attention check or bench.
//
// Check: every supported (variant, query_block, key_block) on ragged frame-aligned blocks (1560 and 100 tokens per
// frame) vs an fp64 CPU masked reference, output NaN-poisoned, rel-L2 < 1e-2, an empty row exactly 0; a full mask
// vs the dense kernel at Lq 4680 x Lk 9360; the planners' selections at the bench shape vs CPU selections computed
// from the GPU's own pooled scores (identical sets expected).
// Bench: Lq 4680 (3 frames x 1560), Lk 4680..32760, 12 heads, head_dim 128, densities 0.1..1.0 as random masks with
// the same block count per row; inputs rotated over buffer sets larger than 3x the L2; CUDA events around each
// launch; median of --reps after warm-up. ratio = sparse_ms / (token_density x dense_ms of the same variant):
// 1.0 = the sparse kernel is exactly as efficient per key as dense. Planner: pooling + scores + selection per rule.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "kernels/attention/flash_attention.h"
#include "core/block_geometry.h"
#include "kernels/cuda_check.h"
#include "kernels/lab_common.h"
#include "kernels/device_info.h"
#include "kernels/attention/flash_fwd_hopper.cuh"
#include "kernels/sparse/block_sparse_attention.h"
#include "kernels/sparse/block_sparse_hopper.cuh"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_recall.h"
#include "kernels/sparse/lab_sparse_planner.cuh"
#include "kernels/speed_switches.h"

using namespace lf;
using namespace lf::gpu;

#include "kernels/sparse/lab_sparse_hopper.cuh"
#include "kernels/sparse/lab_sparse_common.cuh"
#include "kernels/sparse/lab_sparse_checks.cuh"
#include "kernels/sparse/lab_sparse_trace.cuh"

namespace {

// ---- bench --------------------------------------------------------------------------------------------------------
double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// launch(i) runs repetition i (rotating over input sets); median ms of `reps` after 3 warm-ups.
double time_ms(const std::function<void(int)>& launch, int reps, const std::string& what) {
  for (int w = 0; w < 3; ++w) launch(w);
  synchronize_or_die(what + " warm-up");
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    LF_CUDA_CHECK(cudaEventRecord(start), "event");
    launch(r);
    LF_CUDA_CHECK(cudaEventRecord(stop), "event");
    synchronize_or_die(what);
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "event");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median(times);
}

// Kernel rows: kQueuedLaunches launches (rotating input sets) between one pair of events, divided: the GPU time of
// a launch in a queue, as in the engine. One launch alone between events also counts the host's launch work
// (tensor-map encoding, attribute calls), which at density 0.1 and Lk 4680 is as long as the kernel itself.
constexpr int kQueuedLaunches = 10;
double time_queued_ms(const std::function<void(int)>& launch, int reps, const std::string& what) {
  return time_ms(
             [&](int r) {
               for (int i = 0; i < kQueuedLaunches; ++i) launch(r * kQueuedLaunches + i);
             },
             reps, what) /
         kQueuedLaunches;
}

// Host time of one launch call (selector, tensor maps, attributes, the launch itself): the mean over
// kQueuedLaunches calls without synchronisation, median over reps. When it exceeds the kernel's GPU time, a queue of
// launches is host-bound and the GPU idles between kernels.
double host_launch_us(const std::function<void(int)>& launch, int reps, const std::string& what) {
  for (int w = 0; w < 3; ++w) launch(w);
  synchronize_or_die(what + " warm-up");
  std::vector<float> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kQueuedLaunches; ++i) launch(r * kQueuedLaunches + i);
    const auto t1 = std::chrono::steady_clock::now();
    synchronize_or_die(what);
    times.push_back(float(std::chrono::duration<double, std::micro>(t1 - t0).count() / kQueuedLaunches));
  }
  return median(times);
}

struct DenseRow {
  int lk;
  std::string variant, launch;  // launch: "grid" (one CTA per item) or "persistent" (Hopper)
  double ms;        // queued (kQueuedLaunches per event pair)
  double alone_ms;  // one launch per event pair
  double host_us;   // host_launch_us
};
// ratio = sparse_ms / (token_density x dense_ms), block_ratio = sparse_ms / (density x dense_ms), with dense_ms the
// faster dense launch of the chosen variant in this run. tuning: the Hopper sparse launch ("grid" = the kernel as
// it was before persistence and packing, "persistent", "persistent+packed" = the default).
struct SparseRow {
  int lk;
  std::string requested, chosen, tuning;
  int query_block, key_block;
  double density, token_density, sparse_ms, dense_ms, ratio, block_ratio;
  double sparse_alone_ms;  // one launch per event pair (host launch work included)
  double host_us;          // host_launch_us
  // HBM floors at the measured copy bandwidth (BenchResult::hbm_gbps): memory_floor_ms moves q, out and each head's
  // distinct selected K/V blocks once (perfect L2 reuse); no_reuse_ms moves K/V once per selected (row, block).
  double memory_floor_ms, no_reuse_ms;
};

struct PlannerRow {
  int lk, block, topk, hsa_topk;
  double pool_score_ms, topk_ms, hsa_ms, topp_ms;
  // The engine's cached planner with the rule the engine uses at this Lk (HSA once past > keep_frames, else
  // top-k): a chunk's first call (every key block pooled) and its later calls (only the chunk's 3 frames).
  double cached_first_ms = -1, cached_step_ms = -1;
  // 20 later calls back to back, per call: the slower of the host's submission and the GPU's execution. One call
  // alone on an idle GPU also pays the host's launch latency, which the engine hides behind the previous GEMMs.
  double cached_step_queued_ms = -1;
  double recall_ms = -1;  // sampled_recall of that mask, every 16th query row (the statistics path)
};

struct BenchResult {
  double hbm_gbps = 0;  // device-to-device copy, bytes read + written per second (measure_hbm_gbps)
  std::vector<DenseRow> dense;
  std::vector<SparseRow> sparse;
  std::vector<PlannerRow> planner;
  std::vector<lab::planner::BreakdownRow> planner_breakdown;  // lab_sparse_planner.cuh
};

// The HBM ceiling the memory floors use: a 1 GiB device-to-device copy (read + write), median of reps.
double measure_hbm_gbps(int reps) {
  const size_t bytes = size_t(1) << 30;
  DeviceBuffer a(bytes), b(bytes);
  LF_CUDA_CHECK(cudaMemset(a.ptr, 1, bytes), "hbm clear");
  const double ms = time_ms([&](int) { LF_CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice),
                                                     "hbm copy"); },
                            reps, "hbm copy");
  return 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
}

// Bytes of K and V the mask reads: each head's distinct blocks (reuse) or every (row, block) pair (no reuse).
std::pair<double, double> kv_bytes(const Geometry& g, int heads, int dim, const Csr& mask) {
  double distinct = 0, every = 0;
  for (int h = 0; h < heads; ++h) {
    std::vector<char> seen(size_t(g.key_blocks()), 0);
    for (int qb = 0; qb < g.query_blocks(); ++qb) {
      const int r = h * g.query_blocks() + qb;
      for (int i = mask.row_offsets[size_t(r)]; i < mask.row_offsets[size_t(r) + 1]; ++i) {
        const int b = mask.key_indices[size_t(i)];
        const double block_bytes = 2.0 * g.block_length(b) * dim * 2;  // K and V, bf16
        every += block_bytes;
        if (!seen[size_t(b)]) distinct += block_bytes, seen[size_t(b)] = 1;
      }
    }
  }
  return {distinct, every};
}

void bench_lk(int lk, int reps, size_t l2_bytes, BenchResult& result) {
  const int lq = kBenchLq, heads = kBenchHeads, dim = kBenchDim;
  const int64_t row = int64_t(heads) * dim;
  const size_t set_bytes = (size_t(lq) * 2 + size_t(lk) * 2) * row * 2;  // q, out, k, v
  const int sets = g_filter.warm ? 1 : int(std::max<size_t>(2, (3 * l2_bytes + set_bytes - 1) / set_bytes));
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<FlashAttentionParams> params;
  for (int i = 0; i < sets; ++i) {
    buffers.push_back(device_values(size_t(lq) * row, 100 + i, 2.f));
    buffers.push_back(device_values(size_t(lk) * row, 200 + i, 2.f));
    buffers.push_back(device_values(size_t(lk) * row, 300 + i, 1.f));
    buffers.push_back(std::make_unique<DeviceBuffer>(size_t(lq) * row * 2));
    const size_t n = buffers.size();
    params.push_back(params_for(buffers[n - 4]->ptr, buffers[n - 3]->ptr, buffers[n - 2]->ptr, buffers[n - 1]->ptr, lq,
                                lk, heads, dim));
  }
  std::map<FlashVariant, double> dense_ms;
  for (FlashVariant v : {FlashVariant::MmaSync, FlashVariant::Hopper}) {
    if (!flash_attention_supported(params[0], v, nullptr)) continue;
    for (bool persistent : {false, true}) {
      if (persistent && v != FlashVariant::Hopper) continue;
      flash::hopper_dense_persistent() = persistent;
      const double ms =
          time_queued_ms([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); }, reps,
                         fmt::format("dense {} lk {}", flash_variant_name(v), lk));
      const double alone_ms = time_ms([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); },
                                      reps, fmt::format("dense {} lk {} alone", flash_variant_name(v), lk));
      const char* launch = persistent ? "persistent" : "grid";
      const double host_us =
          host_launch_us([&](int i) { flash_attention_forward(params[size_t(i % sets)], v, nullptr); }, reps,
                         fmt::format("dense {} lk {} host", flash_variant_name(v), lk));
      result.dense.push_back({lk, flash_variant_name(v), launch, ms, alone_ms, host_us});
      dense_ms[v] = dense_ms.count(v) ? std::min(dense_ms[v], ms) : ms;
      std::printf("lk %5d dense %-8s %-10s %8.3f ms queued (%.3f ms alone, host %.1f us per launch)\n", lk,
                  flash_variant_name(v), launch, ms, alone_ms, host_us);
    }
    flash::hopper_dense_persistent() = flash::kHopperDensePersistent;
  }
  for (const Combo& combo : kCombos)
  for (const HopperTuning& tuning : kHopperTunings) {
    if (combo.variant == FlashVariant::Auto) continue;  // the same kernels as the explicit rows
    if (g_filter.hopper_default && !(combo.variant == FlashVariant::Hopper && combo.key_block == 128 &&
                                     tuning.persistent && tuning.pack_tails))
      continue;
    if (combo.variant != FlashVariant::Hopper && (tuning.persistent || tuning.pack_tails)) continue;  // one launch
    apply_hopper_tuning(tuning);
    const Geometry g{kTokensPerFrame, combo.key_block, combo.query_block, lq, lk / kTokensPerFrame};
    const std::vector<double> densities =
        g_filter.density >= 0 ? std::vector<double>{g_filter.density}
                              : std::vector<double>(std::begin(kDensities), std::end(kDensities));
    for (double density : densities) {
      const int per_row = std::max(1, int(std::lround(density * g.key_blocks())));
      const Csr mask = random_mask(g, heads, per_row, uint64_t(lk) * 31 + per_row, g_filter.shared_rows);
      const DeviceMask device_mask = upload_mask(mask);
      const BlockSparseLayout layout = device_mask.layout(g, heads);
      FlashVariant chosen = combo.variant;
      std::string why;
      if (!flash_attention_block_sparse_select(params[0], layout, combo.variant, &chosen, &why)) {
        if (density == densities[0]) std::printf("lk %5d skip %s: %s\n", lk, combo_name(combo).c_str(), why.c_str());
        break;
      }
      auto launch = [&](int i) {
        sparse_forward(params[size_t(i % sets)], layout, combo.variant);
      };
      const double ms =
          time_queued_ms(launch, reps, fmt::format("sparse {} lk {} density {}", combo_name(combo), lk, density));
      const double alone_ms = time_ms(launch, reps, "sparse alone");
      const double host_us = host_launch_us(launch, reps, "sparse host");
      const double tokens = token_density(g, mask), dense = dense_ms[chosen];
      const double blocks = double(per_row) / g.key_blocks();
      const auto [kv_distinct, kv_every] = kv_bytes(g, heads, dim, mask);
      const double qo_bytes = 2.0 * lq * row * 2, gb_per_ms = result.hbm_gbps * 1e-3 * 1e9;
      const double memory_floor = (qo_bytes + kv_distinct) / gb_per_ms, no_reuse = (qo_bytes + kv_every) / gb_per_ms;
      const char* tuning_name = chosen == FlashVariant::Hopper ? tuning.name : "grid";
      result.sparse.push_back({lk, flash_variant_name(combo.variant), flash_variant_name(chosen), tuning_name,
                               combo.query_block, combo.key_block, blocks, tokens, ms, dense, ms / (tokens * dense),
                               ms / (blocks * dense), alone_ms, host_us, memory_floor, no_reuse});
      std::printf(
          "lk %5d %-18s %-17s density %.2f (tokens %.3f): sparse %8.3f ms, dense %8.3f ms, ratio %.2f (blocks "
          "%.2f); alone %.3f ms, host %.1f us; HBM floor %.3f ms (ratio %.2f), no L2 reuse %.3f ms\n",
          lk, combo_name(combo).c_str(), tuning_name, blocks, tokens, ms, dense, ms / (tokens * dense),
          ms / (blocks * dense), alone_ms, host_us, memory_floor, memory_floor / (tokens * dense), no_reuse);
    }
  }
  reset_hopper_tuning();
  if (!g_filter.planner) return;
  // Planners on the same shape (one input set: pooling streams q and k once, like the attention call).
  for (int block : {64, 128}) {
    sparse::PlannerGeometry g;
    g.heads = heads;
    g.head_dim = dim;
    g.query_tokens = lq;
    g.query_block = g.key_block = block;
    g.key_frames = lk / kTokensPerFrame;
    g.tokens_per_frame = kTokensPerFrame;
    const size_t bytes = sparse::planner_workspace_bytes(g);
    DeviceBuffer workspace(bytes), offsets(size_t(g.rows() + 1) * 4),
        indices(size_t(sparse::planner_max_selected(g)) * 4);
    const sparse::MaskOutput out{offsets.as<int>(), indices.as<int>(), nullptr};
    const sparse::PlannerBuffers b = sparse::planner_buffers(workspace.ptr, g);
    const FlashAttentionParams& p = params[0];
    PlannerRow pr{lk, block, int(0.15 * g.key_blocks()), 0, 0, 0, -1, 0, -1, -1, -1, -1};
    pr.pool_score_ms = time_ms(
        [&](int) {
          sparse::pool_queries(p.q, row, g, b.pooled_queries);
          sparse::pool_keys(p.k, row, g, b.pooled_keys, b.pooled_frame_keys);
          sparse::block_scores(b.pooled_queries, b.pooled_keys, heads, g.query_blocks(), g.key_blocks(), dim, b.scores);
        },
        reps, "pool + scores");
    pr.topk_ms = time_ms([&](int) { sparse::plan_topk(p.q, row, p.k, row, g, pr.topk, workspace.ptr, bytes, out); },
                         reps, "plan_topk");
    sparse::HsaParams hsa;
    if (g.key_frames - hsa.chunk_frames > hsa.keep_frames) {  // the released dispatch: HSA once past > keep_frames
      hsa.topk = pr.hsa_topk = std::min(pr.topk, sparse::hsa_eligible_blocks(g, hsa));
      pr.hsa_ms = time_ms([&](int) { sparse::plan_hsa(p.q, row, p.k, row, g, hsa, workspace.ptr, bytes, out); }, reps,
                          "plan_hsa");
    }
    pr.topp_ms = time_ms(
        [&](int) {
          sparse::plan_topp(p.q, row, p.k, row, g, 1.f / std::sqrt(float(dim)), 0.9f, workspace.ptr, bytes, out);
        },
        reps, "plan_topp");
    {
      const size_t cached_bytes = sparse::cached_planner_workspace_bytes(g);
      DeviceBuffer cached_workspace(cached_bytes), pooled_keys(size_t(heads) * g.key_blocks() * dim * 4);
      sparse::CachedPlanInputs in;
      in.q = p.q;
      in.q_row_stride = row;
      in.k = p.k;
      in.k_row_stride = row;
      in.geometry = g;
      in.pooled_keys = pooled_keys.as<float>();
      in.workspace = cached_workspace.ptr;
      in.workspace_bytes = cached_bytes;
      auto plan = [&](int first_new_frame) {
        in.first_new_frame = first_new_frame;
        if (pr.hsa_topk > 0)
          sparse::plan_hsa_cached(in, hsa, out);
        else
          sparse::plan_topk_cached(in, pr.topk, out);
      };
      pr.cached_first_ms = time_ms([&](int) { plan(0); }, reps, "cached plan, first call");
      pr.cached_step_ms =
          time_ms([&](int) { plan(g.key_frames - hsa.chunk_frames); }, reps, "cached plan, later call");
      pr.cached_step_queued_ms = time_ms(
                                     [&](int) {
                                       for (int i = 0; i < 20; ++i) plan(g.key_frames - hsa.chunk_frames);
                                     },
                                     reps, "cached plan, 20 later calls") /
                                 20;
      DeviceBuffer recall(size_t(heads) * sparse::recall_sampled_rows(lq, 16) * 4);
      pr.recall_ms = time_ms(
          [&](int) {
            sparse::sampled_recall(p.q, row, p.k, row, g, out.row_offsets, out.key_indices, 16,
                                   1.f / std::sqrt(float(dim)), recall.as<float>());
          },
          5, "sampled recall");
    }
    result.planner.push_back(pr);
    std::printf(
        "lk %5d planner block %3d: pool+scores %.3f ms, topk(%d) %.3f ms, hsa(%d) %.3f ms, topp %.3f ms; cached %s: "
        "first call %.3f ms, later calls %.3f ms (%.4f ms queued); recall (rows / 16) %.3f ms\n",
        lk, block, pr.pool_score_ms, pr.topk, pr.topk_ms, pr.hsa_topk, pr.hsa_ms, pr.topp_ms,
        pr.hsa_topk > 0 ? "hsa" : "topk", pr.cached_first_ms, pr.cached_step_ms, pr.cached_step_queued_ms, pr.recall_ms);
  }
}

void write_json(const std::string& path, const std::string& device, const std::string& commit, int argc, char** argv,
                int failures, const BenchResult& r) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) fail("cannot write {}", path);
  std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"commit\": \"%s\",\n  \"command\": \"", device.c_str(), commit.c_str());
  for (int i = 0; i < argc; ++i) std::fprintf(f, "%s%s", i ? " " : "", argv[i]);
  std::fprintf(f,
               "\",\n  \"correctness_failures\": %d,\n  \"lq\": %d, \"heads\": %d, \"head_dim\": %d, "
               "\"tokens_per_frame\": %d, \"hbm_gbps\": %.1f,\n  \"dense\": [",
               failures, kBenchLq, kBenchHeads, kBenchDim, kTokensPerFrame, r.hbm_gbps);
  for (size_t i = 0; i < r.dense.size(); ++i)
    std::fprintf(f, "%s\n    {\"lk\": %d, \"variant\": \"%s\", \"launch\": \"%s\", \"ms\": %.4f, \"alone_ms\": %.4f, "
                 "\"host_launch_us\": %.2f}",
                 i ? "," : "", r.dense[i].lk, r.dense[i].variant.c_str(), r.dense[i].launch.c_str(), r.dense[i].ms,
                 r.dense[i].alone_ms, r.dense[i].host_us);
  std::fprintf(f, "\n  ],\n  \"sparse\": [");
  for (size_t i = 0; i < r.sparse.size(); ++i) {
    const SparseRow& s = r.sparse[i];
    std::fprintf(
        f,
        "%s\n    {\"lk\": %d, \"variant\": \"%s\", \"tuning\": \"%s\", \"query_block\": %d, \"key_block\": %d, "
        "\"density\": %.4f, \"token_density\": %.4f, \"sparse_ms\": %.4f, \"dense_ms\": %.4f, \"ratio\": %.3f, "
        "\"block_ratio\": %.3f, \"sparse_alone_ms\": %.4f, \"host_launch_us\": %.2f, \"memory_floor_ms\": %.4f, "
        "\"no_reuse_ms\": %.4f}",
        i ? "," : "", s.lk, s.chosen.c_str(), s.tuning.c_str(), s.query_block, s.key_block, s.density,
        s.token_density, s.sparse_ms, s.dense_ms, s.ratio, s.block_ratio, s.sparse_alone_ms, s.host_us,
        s.memory_floor_ms, s.no_reuse_ms);
  }
  std::fprintf(f, "\n  ],\n  \"planner\": [");
  for (size_t i = 0; i < r.planner.size(); ++i) {
    const PlannerRow& p = r.planner[i];
    std::fprintf(f,
                 "%s\n    {\"lk\": %d, \"block\": %d, \"pool_score_ms\": %.4f, \"topk\": %d, \"topk_ms\": %.4f, "
                 "\"hsa_topk\": %d, \"hsa_ms\": %.4f, \"topp_ms\": %.4f, \"cached_first_ms\": %.4f, "
                 "\"cached_step_ms\": %.4f, \"cached_step_queued_ms\": %.4f, \"recall_stride16_ms\": %.4f}",
                 i ? "," : "", p.lk, p.block, p.pool_score_ms, p.topk, p.topk_ms, p.hsa_topk, p.hsa_ms, p.topp_ms,
                 p.cached_first_ms, p.cached_step_ms, p.cached_step_queued_ms, p.recall_ms);
  }
  std::fprintf(f, "\n  ],\n  ");
  lab::planner::write_breakdown_json(f, r.planner_breakdown);
  std::fprintf(f, "\n}\n");
  std::fclose(f);
  std::printf("wrote %s\n", path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path, commit = "unknown";
  bool check = true, bench = true, quick = false, planner_only = false, trace = false;
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else if (a == "--commit" && i + 1 < argc)
      commit = argv[++i];
    else if (a == "--reps" && i + 1 < argc)
      reps = std::max(5, std::atoi(argv[++i]));
    else if (a == "--check-only")
      bench = false;
    else if (a == "--bench-only")
      check = false;
    else if (a == "--quick")
      quick = true;
    else if (a == "--planner-only")
      planner_only = true;
    else if (a == "--lk" && i + 1 < argc)
      g_filter.lk = std::atoi(argv[++i]);
    else if (a == "--density" && i + 1 < argc)
      g_filter.density = std::atof(argv[++i]);
    else if (a == "--hopper-default")
      g_filter.hopper_default = true;
    else if (a == "--no-planner")
      g_filter.planner = false;
    else if (a == "--warm")
      g_filter.warm = true;
    else if (a == "--trace")
      trace = true;
    else if (a == "--shared-rows")
      g_filter.shared_rows = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--json PATH] [--commit SHA] [--check-only] [--bench-only] [--planner-only] [--reps N] "
                   "[--quick] [--lk N] [--density D] [--hopper-default] [--no-planner] [--warm] [--shared-rows] [--trace]\n",
                   argv[0]);
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress must survive a pipe and a kill
  try {
    if (device_count() == 0) {
      std::printf("no CUDA device\n");
      return 77;
    }
    const std::string device = device_name(0);
    cudaDeviceProp props{};
    LF_CUDA_CHECK(cudaGetDeviceProperties(&props, 0), "properties");
    std::printf("device: %s\n", device.c_str());
    if (trace) {  // diagnostics only: phase times of the Hopper kernel's work items
      int clock_khz = 0;
      LF_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0), "clock rate");
      for (const auto& [lk, per_row] : std::vector<std::pair<int, int>>{
               {4680, 1}, {4680, 4}, {4680, 39}, {9360, 8}, {32760, 27}, {32760, 273}})
        for (bool double_q : {false, true})
          for (bool early_handover : {false, true}) trace_case(lk, per_row, clock_khz, early_handover, double_q);
      return 0;
    }
    int failures = 0;
    if (check) {
      std::printf(
          "== correctness: sparse kernel vs fp64 CPU masked reference (rel_l2 < 1e-2), full mask vs dense ==\n");
      if (!planner_only) failures += check_attention();
      std::printf("== correctness: planners at lq %d, 21 frames x %d, %d heads ==\n", kBenchLq, kTokensPerFrame,
                  kBenchHeads);
      failures += check_planners();
      std::printf("correctness: %s (%d failing case%s)\n", failures ? "FAILED" : "passed", failures,
                  failures == 1 ? "" : "s");
    }
    BenchResult result;
    if (bench && !planner_only) {
      result.hbm_gbps = measure_hbm_gbps(reps);
      std::printf("HBM: %.0f GB/s (1 GiB device-to-device copy, read + write)\n", result.hbm_gbps);
      std::printf(
          "== bench: lq %d, heads %d, head_dim %d, %d tokens/frame, median of %d; ratio = sparse / (token "
          "density x dense) ==\n",
          kBenchLq, kBenchHeads, kBenchDim, kTokensPerFrame, reps);
      const std::vector<int> lks =
          quick ? std::vector<int>{4680, 32760} : std::vector<int>{4680, 9360, 14040, 18720, 23400, 28080, 32760};
      for (int lk : g_filter.lk > 0 ? std::vector<int>{g_filter.lk} : lks)
        bench_lk(lk, reps, size_t(props.l2CacheSize), result);
    }
    if (bench && g_filter.planner) {
      std::printf("== planner breakdown: the cached planner per launch group, old / radix / pdl / fused paths, median of %d ==\n",
                  std::max(reps, 20));
      int mismatches = 0;
      result.planner_breakdown =
          lab::planner::bench_breakdown(std::max(reps, 20), size_t(props.l2CacheSize), &mismatches);
      lab::planner::print_breakdown(result.planner_breakdown);
      if (mismatches > 0) std::printf("FAIL: %d planner masks differ from the old path\n", mismatches);
      failures += mismatches;
    }
    if (!json_path.empty()) write_json(json_path, device, commit, argc, argv, check ? failures : -1, result);
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lab_sparse: %s\n", e.what());
    return 1;
  }
}
