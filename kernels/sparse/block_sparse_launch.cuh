#pragma once
// Internal seam between the block-sparse selector (block_sparse_attention.cu) and the kernel instantiations
// (block_sparse_fwd_mma.cu, block_sparse_fwd_hopper.cu, split so the two builds compile in parallel). The kernels
// are the dense ones (attention/flash_fwd_*.cuh) with FrameAlignedSparseKeyBlocks as their schedule.
#include <cuda_runtime.h>

#include "kernels/attention/flash_attention.h"
#include "kernels/attention/flash_block_schedule.cuh"
#include "kernels/attention/flash_tile_traits.cuh"
#include "kernels/sparse/block_sparse_attention.h"
#include "core/block_geometry.h"

namespace lf::gpu::flash {

// The mask as the kernels need it (already validated by the selector).
struct FrameAlignedMask {
  const int* row_offsets;
  const int* key_indices;
  int query_blocks;
  int key_block;
  int tokens_per_frame;
  int key_frames;
};

// The one conversion from the public layout (the selector and lab_sparse's experiments share it).
inline FrameAlignedMask frame_aligned_mask(const FlashAttentionParams& params, const BlockSparseLayout& layout) {
  return {layout.row_offsets, layout.key_indices,      layout.query_blocks,
          layout.key_block,   layout.tokens_per_frame, params.lk / layout.tokens_per_frame};
}

// mma.sync with a 64-row query tile for query_block 64: one m16 row tile per warp, Q in registers, 3 stages.
// tuned on the H200 as the dense "mma_q_in_registers" row of lab_attention (245-267 TFLOP/s against 272-289 for
// the default 128-row tile); the 2-warp, 2-row-tile alternative leaves an SM with 4 warps.
template <int kHeadDim>
using MmaSyncQueryBlock64Traits = MmaSyncTileTraits<kHeadDim, 4, 64, 3, 1, 1>;

template <int kBlockN>
FrameAlignedSparseKeyBlocks<kBlockN> frame_aligned_schedule(const FrameAlignedMask& mask) {
  FrameAlignedSparseKeyBlocks<kBlockN> schedule;
  schedule.row_offsets = mask.row_offsets;
  schedule.key_indices = mask.key_indices;
  schedule.query_blocks = mask.query_blocks;
  schedule.key_block = mask.key_block;
  schedule.tokens_per_frame = mask.tokens_per_frame;
  schedule.blocks_per_frame = frame_blocks::blocks_per_frame(mask.tokens_per_frame, mask.key_block);
  schedule.key_blocks = mask.key_frames * schedule.blocks_per_frame;
  schedule.steps_per_block = (mask.key_block + kBlockN - 1) / kBlockN;
  return schedule;
}

// query_block 64 or 128, key_block <= 2 x 64, head_dim 64 or 128.
void run_block_sparse_mma(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim, int query_block,
                          cudaStream_t stream);
// Rows per packed piece for this mask on a kBlockN-key tile, 0 when its tails are not packed: only 128-key blocks
// (one tile each) whose frame tail is a whole number of 8-row swizzle atoms and at most half a tile.
int packed_tail_rows(const FrameAlignedMask& mask, int tile_keys);

// query_block 128, key_block <= 128, head_dim 64 or 128; needs the sm_90a build.
void run_block_sparse_hopper(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim,
                             cudaStream_t stream);

}  // namespace lf::gpu::flash
