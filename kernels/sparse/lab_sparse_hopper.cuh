#pragma once
// lab_sparse's Hopper experiments, compiled into the lab only: the production kernel (block_sparse_fwd_hopper.cu)
// carries neither the clock stamps nor the early hand-over nor the two-Q-tile instantiation.
// Included by lab_sparse.cu only (one translation unit), after its includes.

namespace {

// The kernel's lab switches (flash_fwd_hopper.cuh, NoHopperLab has the same two members as constants).
struct HopperLab {
  long long* stamps = nullptr;  // --trace: clock stamps of the next launches, null = off
  bool handover = false;        // consumer 1 hands over at its last P V (flash_fwd_hopper.cuh, take_turn)
  __host__ __device__ long long* trace() const { return stamps; }
  __host__ __device__ bool early_handover() const { return handover; }
};

// The experiments of the launches that follow (apply_hopper_tuning sets them; reset_hopper_tuning clears them).
struct HopperExperiments {
  HopperLab lab;
  bool double_q = false;  // HopperTileTraits::kQBuffers = 2, which at head_dim 128 leaves room for 2 K/V stages
  bool any() const { return lab.stamps != nullptr || lab.handover || double_q; }
};
HopperExperiments g_experiments;

template <class Traits>
void launch_experiment(const FlashAttentionParams& params, const BlockSparseLayout& layout) {
  flash::launch_block_sparse_hopper<Traits>(flash::make_kernel_args(params), flash::frame_aligned_mask(params, layout),
                                            nullptr, g_experiments.lab);
}

// What every lab launch of block-sparse attention goes through: the public entry point (what the engine runs)
// unless an experiment is on and the selector picks the Hopper kernel.
void sparse_forward(const FlashAttentionParams& params, const BlockSparseLayout& layout, FlashVariant variant) {
  FlashVariant chosen = FlashVariant::Auto;
  std::string why;
  if (!g_experiments.any() || !flash_attention_block_sparse_select(params, layout, variant, &chosen, &why) ||
      chosen != FlashVariant::Hopper) {
    flash_attention_block_sparse_forward(params, layout, variant, nullptr);
    return;
  }
  using DoubleQ128 = flash::HopperTileTraits<128, 128, 2, true, false, 2>;
  using DoubleQ64 = flash::HopperTileTraits<64, 128, 3, true, false, 2>;
  if (params.head_dim == 128)
    g_experiments.double_q ? launch_experiment<DoubleQ128>(params, layout)
                           : launch_experiment<flash::HopperDefaultTraits<128>>(params, layout);
  else if (params.head_dim == 64)
    g_experiments.double_q ? launch_experiment<DoubleQ64>(params, layout)
                           : launch_experiment<flash::HopperDefaultTraits<64>>(params, layout);
  else
    fail("lab_sparse: head_dim {} has no Hopper experiment (64 or 128)", params.head_dim);
}

}  // namespace
