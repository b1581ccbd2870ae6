#pragma once
// lab_sparse --trace: where a work item's time goes in the Hopper kernel (in-kernel clock stamps).
// Included by lab_sparse.cu only (one translation unit), after its includes.

namespace {

// ---- trace (--trace): where a work item's time goes in the Hopper kernel ------------------------------------------
// One launch per case with HopperLab::trace on (after an untraced warm-up launch of the same inputs), then
// the mean of each phase over every (CTA, item, consumer) stamped, in microseconds of the SM clock.
void trace_case(int lk, int per_row, int clock_khz, bool early_handover, bool double_q) {
  const int lq = kBenchLq, heads = kBenchHeads, dim = kBenchDim;
  const int64_t row = int64_t(heads) * dim;
  auto q = device_values(size_t(lq) * row, 11, 2.f), k = device_values(size_t(lk) * row, 12, 2.f),
       v = device_values(size_t(lk) * row, 13, 1.f);
  DeviceBuffer out(size_t(lq) * row * 2);
  const FlashAttentionParams params = params_for(q->ptr, k->ptr, v->ptr, out.ptr, lq, lk, heads, dim);
  const Geometry g{kTokensPerFrame, 128, 128, lq, lk / kTokensPerFrame};
  const Csr mask = random_mask(g, heads, per_row, uint64_t(lk) * 31 + per_row);
  const DeviceMask device_mask = upload_mask(mask);
  const BlockSparseLayout layout = device_mask.layout(g, heads);
  const int ctas = flash::hopper_persistent_ctas();
  const size_t stamps = size_t(ctas) * flash::kTraceItems * flash::kTraceRoles * flash::kTracePoints;
  DeviceBuffer trace(stamps * sizeof(long long));
  LF_CUDA_CHECK(cudaMemset(trace.ptr, 0, stamps * sizeof(long long)), "trace clear");
  apply_hopper_tuning({"trace", true, true, early_handover, double_q});
  sparse_forward(params, layout, FlashVariant::Hopper);  // warm-up
  cudaEvent_t start, stop;
  LF_CUDA_CHECK(cudaEventCreate(&start), "event");
  LF_CUDA_CHECK(cudaEventCreate(&stop), "event");
  g_experiments.lab.stamps = trace.as<long long>();
  LF_CUDA_CHECK(cudaEventRecord(start), "event");
  sparse_forward(params, layout, FlashVariant::Hopper);
  LF_CUDA_CHECK(cudaEventRecord(stop), "event");
  reset_hopper_tuning();
  synchronize_or_die("trace launch");
  float kernel_ms = 0;
  LF_CUDA_CHECK(cudaEventElapsedTime(&kernel_ms, start, stop), "event");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const std::vector<long long> t = download<long long>(trace.ptr, stamps);
  auto at = [&](int cta, int slot, int role, int point) {
    return t[((size_t(cta) * flash::kTraceItems + slot) * flash::kTraceRoles + role) * flash::kTracePoints + point];
  };
  const double us_per_cycle = 1e3 / double(clock_khz);
  // Consumer phases (from point a to point b of the same item), producer phases, and item-to-item gaps.
  struct Phase { const char* name; int role; int from_slot_offset; int a, b; };
  const Phase phases[] = {
      {"consumer: wait for Q (item start -> q_full)", 0, 0, flash::kTraceItemStart, flash::kTraceQReady},
      {"consumer: wait for K 0 (q_full -> k_full)", 0, 0, flash::kTraceQReady, flash::kTraceFirstK},
      {"consumer: tile 0 S + softmax", 0, 0, flash::kTraceFirstK, flash::kTraceFirstSoftmax},
      {"consumer: tiles 1.. (loop)", 0, 0, flash::kTraceFirstSoftmax, flash::kTraceLoopDone},
      {"consumer: last P V", 0, 0, flash::kTraceLoopDone, flash::kTraceLastPv},
      {"consumer: finish + store", 0, 0, flash::kTraceLastPv, flash::kTraceStored},
      {"consumer: whole item", 0, 0, flash::kTraceItemStart, flash::kTraceStored},
      {"producer: wait for q_empty", 2, 0, flash::kTraceItemStart, flash::kTraceQReady},
      {"producer: issue the item's K/V loads", 2, 0, flash::kTraceQReady, flash::kTraceFirstK},
  };
  std::printf("trace lk %5d, %2d blocks per row (%d items on %d CTAs)%s%s: kernel %.1f us\n", lk, per_row,
              heads * g.query_blocks(), ctas, early_handover ? ", early hand-over" : "",
              double_q ? ", two Q tiles + 2 stages" : "", kernel_ms * 1e3);
  for (const Phase& phase : phases) {
    std::string line = fmt::format("  {:<44}", phase.name);
    for (int role : phase.role == 2 ? std::vector<int>{2} : std::vector<int>{0, 1}) {
      double sum = 0;
      int n = 0;
      for (int cta = 0; cta < ctas; ++cta)
        for (int slot = 0; slot < flash::kTraceItems; ++slot) {
          const long long a = at(cta, slot, role, phase.a), b = at(cta, slot, role, phase.b);
          if (a == 0 || b == 0) continue;
          sum += double(b - a);
          ++n;
        }
      line += fmt::format(" {}{:7.2f} us (n {})", role == 2 ? "" : role == 0 ? "c0 " : "  c1 ",
                          n ? sum / n * us_per_cycle : 0.0, n);
    }
    std::printf("%s\n", line.c_str());
  }
  // Q load latency: the producer issued Q (its kTraceQReady) -> the consumers saw it (their kTraceQReady).
  // Item gap: a consumer's store of item s -> its start of item s + 1. CTA span: setup barrier -> last store.
  double q_latency = 0, gap = 0, span = 0, first = 0;
  int nq = 0, ng = 0, ns = 0;
  for (int cta = 0; cta < ctas; ++cta) {
    long long last = 0;
    for (int slot = 0; slot < flash::kTraceItems; ++slot)
      for (int role : {0, 1}) {
        const long long issued = at(cta, slot, 2, flash::kTraceQReady), seen = at(cta, slot, role, flash::kTraceQReady);
        if (issued && seen) q_latency += double(seen - issued), ++nq;
        const long long stored = at(cta, slot, role, flash::kTraceStored);
        if (slot + 1 < flash::kTraceItems) {
          const long long next = at(cta, slot + 1, role, flash::kTraceItemStart);
          if (stored && next) gap += double(next - stored), ++ng;
        }
        last = std::max(last, stored);
      }
    const long long begin = at(cta, 0, 2, flash::kTraceKernelStart);
    if (begin && last) span += double(last - begin), ++ns;
    const long long start0 = at(cta, 0, 0, flash::kTraceItemStart);
    if (begin && start0) first += double(start0 - begin);
  }
  std::printf("  %-44s %7.2f us\n", "producer Q issue -> consumer q_full", nq ? q_latency / nq * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us\n", "consumer store -> next item start", ng ? gap / ng * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us\n", "CTA setup -> first item start", ns ? first / ns * us_per_cycle : 0.0);
  std::printf("  %-44s %7.2f us (mean over CTAs)\n", "CTA setup -> last store", ns ? span / ns * us_per_cycle : 0.0);
}

}  // namespace
