// Public entry of block-sparse flash attention: one selector decides support and dispatch for every variant.
#include <fmt/format.h>

#include "core/error.h"
#include "kernels/sparse/block_sparse_attention.h"
#include "kernels/sparse/block_sparse_launch.cuh"

namespace lf::gpu {

namespace {

using flash::HopperDefaultTraits;
using flash::MmaSyncDefaultTraits;

// tuned: whether Auto sends (query_block 128, key_block 64) to the Hopper kernel, which computes a full 128-key tile
// for each 64-key block (half masked) at ~2x the mma.sync kernel's dense rate. Off until lab_sparse's
// hopper vs mma_sync rows for key_block 64 say otherwise.
constexpr bool kAutoHopperForKeyBlock64 = false;

bool refuse(std::string* why, std::string reason) {
  if (why != nullptr) *why = std::move(reason);
  return false;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Checks every variant shares: the layout describes this problem.
bool layout_matches(const FlashAttentionParams& p, const BlockSparseLayout& layout, std::string* why) {
  if (layout.row_offsets == nullptr || layout.key_indices == nullptr)
    return refuse(why, "block-sparse attention: row_offsets and key_indices must be device pointers (one is null)");
  if (layout.query_block != 64 && layout.query_block != 128)
    return refuse(
        why, fmt::format("block-sparse attention: query_block {} is not supported (64 or 128)", layout.query_block));
  if (layout.key_block != 64 && layout.key_block != 128)
    return refuse(why,
                  fmt::format("block-sparse attention: key_block {} is not supported (64 or 128)", layout.key_block));
  if (layout.tokens_per_frame <= 0)
    return refuse(why,
                  fmt::format("block-sparse attention: tokens_per_frame {} must be positive", layout.tokens_per_frame));
  if (p.lk % layout.tokens_per_frame != 0)
    return refuse(why, fmt::format("block-sparse attention: lk {} is not a whole number of frames of {} tokens", p.lk,
                                   layout.tokens_per_frame));
  if (layout.heads != p.heads)
    return refuse(why,
                  fmt::format("block-sparse attention: layout has {} heads, the attention {}", layout.heads, p.heads));
  if (layout.query_blocks != ceil_div(p.lq, layout.query_block))
    return refuse(why, fmt::format("block-sparse attention: query_blocks {} != ceil(lq {} / query_block {}) = {}",
                                   layout.query_blocks, p.lq, layout.query_block, ceil_div(p.lq, layout.query_block)));
  return true;
}

// The kernel's query tile must be the mask's query block; its key tile must hold a mask block (mma.sync: in at
// most two steps).
bool tiles_support(const BlockSparseLayout& layout, FlashVariant variant, std::string* why) {
  if (variant == FlashVariant::Hopper) {
    constexpr int kTileM = HopperDefaultTraits<128>::kBlockM, kTileN = HopperDefaultTraits<128>::kBlockN;
    if (layout.query_block != kTileM)
      return refuse(why, fmt::format("block-sparse attention (hopper): query_block {} is not supported (the Hopper "
                                     "tile is {} query rows; use mma_sync for 64)",
                                     layout.query_block, kTileM));
    if (layout.key_block > kTileN)
      return refuse(why, fmt::format("block-sparse attention (hopper): key_block {} exceeds the {}-key tile",
                                     layout.key_block, kTileN));
    return true;
  }
  constexpr int kTileN = MmaSyncDefaultTraits<128>::kBlockN;
  if (layout.query_block != MmaSyncDefaultTraits<128>::kBlockM &&
      layout.query_block != flash::MmaSyncQueryBlock64Traits<128>::kBlockM)
    return refuse(why, fmt::format("block-sparse attention (mma_sync): query_block {} has no kernel tile (64, 128)",
                                   layout.query_block));
  if (layout.key_block > 2 * kTileN)
    return refuse(why, fmt::format("block-sparse attention (mma_sync): key_block {} exceeds two {}-key tiles",
                                   layout.key_block, kTileN));
  return true;
}

bool prefers_hopper(const BlockSparseLayout& layout) {
  return layout.query_block == 128 && (layout.key_block == 128 || kAutoHopperForKeyBlock64);
}

}  // namespace

bool flash_attention_block_sparse_select(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                         FlashVariant requested, FlashVariant* chosen, std::string* why) {
  if (!layout_matches(params, layout, why)) return false;
  requested = flash_variant_from_environment(requested);
  if (requested != FlashVariant::Auto) {
    if (!flash_attention_select(params, requested, nullptr, why)) return false;
    if (!tiles_support(layout, requested, why)) return false;
    if (chosen != nullptr) *chosen = requested;
    return true;
  }
  if (prefers_hopper(layout) && flash_attention_select(params, FlashVariant::Hopper, nullptr, nullptr) &&
      tiles_support(layout, FlashVariant::Hopper, nullptr)) {
    if (chosen != nullptr) *chosen = FlashVariant::Hopper;
    return true;
  }
  if (!flash_attention_select(params, FlashVariant::MmaSync, nullptr, why)) return false;
  if (!tiles_support(layout, FlashVariant::MmaSync, why)) return false;
  if (chosen != nullptr) *chosen = FlashVariant::MmaSync;
  return true;
}

bool flash_attention_block_sparse_supported(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                            FlashVariant variant, std::string* why) {
  return flash_attention_block_sparse_select(params, layout, variant, nullptr, why);
}

void flash_attention_block_sparse_forward(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                          FlashVariant variant, void* stream) {
  FlashVariant chosen = FlashVariant::Auto;
  std::string why;
  if (!flash_attention_block_sparse_select(params, layout, variant, &chosen, &why)) throw Error(why);
  const flash::FlashKernelArgs args = flash::make_kernel_args(params);
  const flash::FrameAlignedMask mask = flash::frame_aligned_mask(params, layout);
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  if (chosen == FlashVariant::Hopper)
    flash::run_block_sparse_hopper(args, mask, params.head_dim, cuda_stream);
  else
    flash::run_block_sparse_mma(args, mask, params.head_dim, layout.query_block, cuda_stream);
}

}  // namespace lf::gpu
