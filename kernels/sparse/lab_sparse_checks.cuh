#pragma once
// lab_sparse's checks: every combination vs the fp64 CPU masked reference, a full mask vs dense, and the
// planners' selections vs CPU rules applied to the GPU's own pooled scores.
// Included by lab_sparse.cu only (one translation unit), after its includes.

namespace {

// ---- checks -------------------------------------------------------------------------------------------------------
std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const Geometry& g, int heads, int dim,
                                       const Csr& mask, float scale) {
  std::vector<float> out(size_t(g.lq) * heads * dim, 0.f);
  parallel_for(g.lq * heads, [&](int task) {
    const int row = task / heads, h = task % heads, r = h * g.query_blocks() + row / g.query_block;
    std::vector<double> scores, acc(static_cast<size_t>(dim), 0.0);
    std::vector<int> keys;
    for (int i = mask.row_offsets[size_t(r)]; i < mask.row_offsets[size_t(r) + 1]; ++i)
      for (int t = 0; t < g.block_length(mask.key_indices[size_t(i)]); ++t)
        keys.push_back(g.block_start(mask.key_indices[size_t(i)]) + t);
    if (keys.empty()) return;
    double best = -INFINITY;
    for (int j : keys) {
      double dot = 0;
      for (int d = 0; d < dim; ++d)
        dot += double(q[(size_t(row) * heads + h) * dim + d]) * k[(size_t(j) * heads + h) * dim + d];
      scores.push_back(dot * scale);
      best = std::max(best, scores.back());
    }
    double total = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      const double p = std::exp(scores[i] - best);
      total += p;
      for (int d = 0; d < dim; ++d) acc[size_t(d)] += p * v[(size_t(keys[i]) * heads + h) * dim + d];
    }
    for (int d = 0; d < dim; ++d) out[(size_t(row) * heads + h) * dim + d] = float(acc[size_t(d)] / total);
  });
  return out;
}

// rel-L2 of bf16 `got` against `want`; NaN/Inf (or the unwritten poison) gives +Inf.
double rel_l2(const std::vector<uint16_t>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = got[i];
    const float x = __bfloat162float(__nv_bfloat16(raw));
    if (!std::isfinite(x)) return INFINITY;
    diff += (double(x) - want[i]) * (double(x) - want[i]);
    ref += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(ref, 1e-30));
}
std::vector<float> to_float(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = bits[i];
    out[i] = __bfloat162float(__nv_bfloat16(raw));
  }
  return out;
}

int check_attention() {
  int failures = 0;
  struct Case {
    int tokens_per_frame, frames, lq, dim;
  };
  // 1560: 24-key tails packed 5 to a tile on Hopper; 296 (2 x 128 + 40): tails of 40, 3 to a tile; 100: unpacked.
  const Case cases[] = {{1560, 3, 1000, 128}, {100, 5, 150, 64}, {100, 4, 333, 128}, {296, 9, 300, 128},
                        {296, 7, 260, 64}};
  uint64_t seed = 1;
  for (const Case& c : cases)
    for (const Combo& combo : kCombos) {
      const Geometry g{c.tokens_per_frame, combo.key_block, combo.query_block, c.lq, c.frames};
      const int heads = 2;
      const auto q = host_values(size_t(g.lq) * heads * c.dim, seed++, 2.f);
      const auto k = host_values(size_t(g.lk()) * heads * c.dim, seed++, 2.f);
      const auto v = host_values(size_t(g.lk()) * heads * c.dim, seed++, 1.f);
      auto dq = device_values(q.size(), seed - 3, 2.f), dk = device_values(k.size(), seed - 2, 2.f),
           dv = device_values(v.size(), seed - 1, 1.f);
      DeviceBuffer dout(q.size() * 2);
      const Csr mask = random_mask(g, heads, -1, seed);
      const DeviceMask device_mask = upload_mask(mask);
      const FlashAttentionParams p = params_for(dq->ptr, dk->ptr, dv->ptr, dout.ptr, g.lq, g.lk(), heads, c.dim);
      const BlockSparseLayout layout = device_mask.layout(g, heads);
      const std::string what =
          fmt::format("{} tpf {} lk {} lq {} d {}", combo_name(combo), g.tokens_per_frame, g.lk(), g.lq, c.dim);
      std::string why;
      if (!flash_attention_block_sparse_supported(p, layout, combo.variant, &why)) {
        std::printf("  skip %s: %s\n", what.c_str(), why.c_str());
        continue;
      }
      const std::vector<float> want = reference_attention(q, k, v, g, heads, c.dim, mask, p.scale);
      // Every Hopper launch (grid, persistent, persistent + packed tails) against the same reference.
      for (const HopperTuning& tuning : kHopperTunings) {
        if (combo.variant != FlashVariant::Hopper && (tuning.persistent || tuning.pack_tails)) continue;
        apply_hopper_tuning(tuning);
        LF_CUDA_CHECK(cudaMemset(dout.ptr, 0xff, q.size() * 2), "poison");
        sparse_forward(p, layout, combo.variant);
        synchronize_or_die("check " + what + " " + tuning.name);
        const auto got = download<uint16_t>(dout.ptr, q.size());
        const double error = rel_l2(got, want);
        bool empty_row_zero = true;  // last query block of the last head
        for (int row = (g.query_blocks() - 1) * g.query_block; row < g.lq; ++row)
          for (int d = 0; d < c.dim; ++d) empty_row_zero &= got[(size_t(row) * heads + heads - 1) * c.dim + d] == 0;
        const bool ok = error < 1e-2 && empty_row_zero;
        failures += ok ? 0 : 1;
        std::printf("  %s %s %s: rel_l2 %.2e, empty row %s (%zu of %d blocks)\n", ok ? "ok  " : "FAIL", what.c_str(),
                    combo.variant == FlashVariant::Hopper ? tuning.name : "", error,
                    empty_row_zero ? "zero" : "NOT ZERO", mask.key_indices.size(),
                    heads * g.query_blocks() * g.key_blocks());
      }
      reset_hopper_tuning();
    }

  // Full mask vs dense at a bench-sized shape (no CPU reference needed).
  for (const Combo& combo : kCombos) {
    const Geometry g{kTokensPerFrame, combo.key_block, combo.query_block, kBenchLq, 6};
    const int heads = 4;
    auto dq = device_values(size_t(g.lq) * heads * kBenchDim, 11, 2.f),
         dk = device_values(size_t(g.lk()) * heads * kBenchDim, 12, 2.f),
         dv = device_values(size_t(g.lk()) * heads * kBenchDim, 13, 1.f);
    DeviceBuffer dense_out(size_t(g.lq) * heads * kBenchDim * 2), sparse_out(size_t(g.lq) * heads * kBenchDim * 2);
    Csr full;
    for (int r = 0; r < heads * g.query_blocks(); ++r) {
      for (int b = 0; b < g.key_blocks(); ++b) full.key_indices.push_back(b);
      full.row_offsets.push_back(int(full.key_indices.size()));
    }
    const DeviceMask device_mask = upload_mask(full);
    FlashAttentionParams p = params_for(dq->ptr, dk->ptr, dv->ptr, sparse_out.ptr, g.lq, g.lk(), heads, kBenchDim);
    const std::string what = fmt::format("{} full mask vs dense lq {} lk {}", combo_name(combo), g.lq, g.lk());
    std::string why;
    if (!flash_attention_block_sparse_supported(p, device_mask.layout(g, heads), combo.variant, &why)) {
      std::printf("  skip %s: %s\n", what.c_str(), why.c_str());
      continue;
    }
    LF_CUDA_CHECK(cudaMemset(sparse_out.ptr, 0xff, size_t(g.lq) * heads * kBenchDim * 2), "poison");
    sparse_forward(p, device_mask.layout(g, heads), combo.variant);
    FlashVariant dense_variant = combo.variant;
    flash_attention_block_sparse_select(p, device_mask.layout(g, heads), combo.variant, &dense_variant, nullptr);
    p.out = dense_out.ptr;
    flash_attention_forward(p, dense_variant, nullptr);
    synchronize_or_die("check " + what);
    const size_t n = size_t(g.lq) * heads * kBenchDim;
    const auto sparse_bits = download<uint16_t>(sparse_out.ptr, n), dense_bits = download<uint16_t>(dense_out.ptr, n);
    if (dense_variant == FlashVariant::Hopper) {
      // The persistent dense launch visits the same tiles in the same order per item: the same bits.
      flash::hopper_dense_persistent() = !flash::kHopperDensePersistent;
      LF_CUDA_CHECK(cudaMemset(dense_out.ptr, 0xff, n * 2), "poison");
      flash_attention_forward(p, dense_variant, nullptr);
      synchronize_or_die("check persistent dense");
      flash::hopper_dense_persistent() = flash::kHopperDensePersistent;
      const bool same = download<uint16_t>(dense_out.ptr, n) == dense_bits;
      failures += same ? 0 : 1;
      std::printf("  %s hopper dense %s launch vs %s: %s\n", same ? "ok  " : "FAIL",
                  flash::kHopperDensePersistent ? "grid" : "persistent",
                  flash::kHopperDensePersistent ? "persistent" : "grid", same ? "bitwise identical" : "DIFFERENT");
    }
    const double error = rel_l2(sparse_bits, to_float(dense_bits));
    const bool identical = sparse_bits == dense_bits;
    failures += error < 1e-2 ? 0 : 1;
    std::printf("  %s %s: rel_l2 %.2e%s\n", error < 1e-2 ? "ok  " : "FAIL", what.c_str(), error,
                identical ? " (bitwise identical)" : "");
  }
  return failures;
}

// CPU selections from the GPU's own scores; returns the number of rows that differ.
int compare_rows(const Csr& want, const std::vector<int>& offsets, const std::vector<int>& indices) {
  int bad = 0;
  for (size_t r = 0; r + 1 < want.row_offsets.size(); ++r) {
    const std::vector<int> a(want.key_indices.begin() + want.row_offsets[r],
                             want.key_indices.begin() + want.row_offsets[r + 1]);
    const std::vector<int> b(indices.begin() + offsets[r], indices.begin() + offsets[r + 1]);
    bad += a != b ? 1 : 0;
  }
  return bad;
}
std::vector<int> cpu_order(const float* scores, int count, const std::vector<char>* eligible = nullptr) {
  std::vector<int> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const bool ea = !eligible || (*eligible)[size_t(a)], eb = !eligible || (*eligible)[size_t(b)];
    return ea != eb ? ea : scores[a] > scores[b];
  });
  return order;
}
void push_row(Csr& csr, std::vector<int> order, int keep) {
  std::sort(order.begin(), order.begin() + keep);
  csr.key_indices.insert(csr.key_indices.end(), order.begin(), order.begin() + keep);
  csr.row_offsets.push_back(int(csr.key_indices.size()));
}

// Planner checks at a bench shape: pooling vs CPU means, and each rule's selection vs the CPU rule applied to the
// GPU's own scores (so only the selection is compared). Top-p rows whose cut lies within 1e-4 of p are reported
// as near ties, not failures (fp32 vs fp64 sums may decide those either way).
int check_planners() {
  int failures = 0;
  sparse::PlannerGeometry g;
  g.heads = kBenchHeads;
  g.head_dim = kBenchDim;
  g.query_tokens = kBenchLq;
  g.key_frames = 21;
  g.tokens_per_frame = kTokensPerFrame;
  for (int block : {64, 128}) {
    g.query_block = g.key_block = block;
    const int64_t row = int64_t(g.heads) * g.head_dim;
    const auto k = host_values(size_t(g.key_tokens()) * row, 22, 2.f);
    auto dq = device_values(size_t(g.query_tokens) * row, 21, 2.f), dk = device_values(k.size(), 22, 2.f);
    const size_t bytes = sparse::planner_workspace_bytes(g);
    DeviceBuffer workspace(bytes);
    const sparse::PlannerBuffers b = sparse::planner_buffers(workspace.ptr, g);
    const int rows = g.rows(), kb = g.key_blocks();
    DeviceBuffer offsets(size_t(rows + 1) * 4), indices(size_t(sparse::planner_max_selected(g)) * 4);
    const sparse::MaskOutput out{offsets.as<int>(), indices.as<int>(), nullptr};

    // Pooled keys vs CPU (double) means.
    sparse::pool_keys(dk->ptr, row, g, b.pooled_keys, nullptr, nullptr);
    synchronize_or_die("pool_keys");
    const auto pooled = download<float>(b.pooled_keys, size_t(g.heads) * kb * g.head_dim);
    const Geometry kg{g.tokens_per_frame, block, block, g.query_tokens, g.key_frames};
    double diff = 0, ref = 0;
    for (int h = 0; h < g.heads; ++h)
      for (int blk = 0; blk < kb; ++blk)
        for (int d = 0; d < g.head_dim; ++d) {
          double sum = 0;
          for (int t = 0; t < kg.block_length(blk); ++t)
            sum += k[(size_t(kg.block_start(blk) + t) * g.heads + h) * g.head_dim + d];
          const double want = sum / kg.block_length(blk), got = pooled[(size_t(h) * kb + blk) * g.head_dim + d];
          diff += (got - want) * (got - want);
          ref += want * want;
        }
    const double pool_error = std::sqrt(diff / ref);
    failures += pool_error < 1e-5 ? 0 : 1;
    std::printf("  %s pool_keys block %d: rel_l2 %.2e vs CPU means\n", pool_error < 1e-5 ? "ok  " : "FAIL", block,
                pool_error);

    const int topk = int(0.15 * kb);
    sparse::HsaParams hsa;  // the short config: chunk 3, keep_frames 6, sink 1, near 2
    hsa.topk = std::min(topk, sparse::hsa_eligible_blocks(g, hsa));
    const float scale = 1.f / std::sqrt(float(g.head_dim)), p = 0.9f;
    for (int rule = 0; rule < 3; ++rule) {
      const char* name = rule == 0 ? "topk" : rule == 1 ? "hsa" : "topp";
      if (rule == 0) sparse::plan_topk(dq->ptr, row, dk->ptr, row, g, topk, workspace.ptr, bytes, out);
      if (rule == 1) sparse::plan_hsa(dq->ptr, row, dk->ptr, row, g, hsa, workspace.ptr, bytes, out);
      if (rule == 2) sparse::plan_topp(dq->ptr, row, dk->ptr, row, g, scale, p, workspace.ptr, bytes, out);
      synchronize_or_die(std::string("plan_") + name);
      const auto scores = download<float>(b.scores, size_t(rows) * kb);
      const auto frame_scores = download<float>(b.frame_scores, size_t(rows) * g.key_frames);
      const auto got_offsets = download<int>(offsets.ptr, size_t(rows + 1));
      const auto got_indices = download<int>(indices.ptr, size_t(got_offsets.back()));
      Csr want;
      int near_ties = 0;
      for (int r = 0; r < rows; ++r) {
        const float* s = &scores[size_t(r) * kb];
        if (rule == 0) push_row(want, cpu_order(s, kb), topk);
        if (rule == 1) {
          const int past = g.key_frames - hsa.chunk_frames, middle_end = past - hsa.keep_near;
          std::vector<char> frame_ok(size_t(g.key_frames));
          for (int f = 0; f < g.key_frames; ++f) frame_ok[size_t(f)] = f < hsa.keep_sink || f >= middle_end;
          const auto middle =
              cpu_order(&frame_scores[size_t(r) * g.key_frames + hsa.keep_sink], middle_end - hsa.keep_sink);
          for (int i = 0; i < std::min(hsa.keep_frames - hsa.keep_sink - hsa.keep_near, int(middle.size())); ++i)
            frame_ok[size_t(hsa.keep_sink + middle[size_t(i)])] = 1;
          std::vector<char> eligible(static_cast<size_t>(kb));
          for (int blk = 0; blk < kb; ++blk) eligible[size_t(blk)] = frame_ok[size_t(blk / g.blocks_per_frame())];
          push_row(want, cpu_order(s, kb, &eligible), hsa.topk);
        }
        if (rule == 2) {
          const auto order = cpu_order(s, kb);
          double total = 0, mass = 0, margin = 1;
          for (int i = 0; i < kb; ++i) total += std::exp((double(s[i]) - s[order[0]]) * scale);
          int keep = 0;
          for (int j = 0; j < kb; ++j) {
            mass += std::exp((double(s[order[size_t(j)]]) - s[order[0]]) * scale) / total;
            margin = std::min(margin, std::fabs(mass - p));
            if (keep == 0 && mass >= p) keep = j + 1;
          }
          push_row(want, order, std::max(1, keep == 0 ? kb : keep));
          const std::vector<int> a(
              want.key_indices.end() - (want.row_offsets[size_t(r) + 1] - want.row_offsets[size_t(r)]),
              want.key_indices.end());
          const std::vector<int> got(got_indices.begin() + got_offsets[size_t(r)],
                                     got_indices.begin() + got_offsets[size_t(r) + 1]);
          if (a != got && margin < 1e-4) ++near_ties;
        }
      }
      const int bad = compare_rows(want, got_offsets, got_indices) - near_ties;
      failures += bad == 0 ? 0 : 1;
      std::printf("  %s plan_%s block %d: %d of %d rows differ from the CPU rule (%d near ties), %d blocks selected\n",
                  bad == 0 ? "ok  " : "FAIL", name, block, bad, rows, near_ties, got_offsets.back());
    }
  }
  return failures;
}

}  // namespace
