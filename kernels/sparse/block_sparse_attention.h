#pragma once
// Block-sparse flash attention forward on the GPU over lf::BlockMask's layout (lib/attention/block_mask.h).
// Host-side API with plain C++ types: g++-compiled code includes this without CUDA headers.
//
// For head h and query block qb (query_block tokens, the last one ragged), the output rows are the softmax over
// exactly the keys of the key blocks listed in CSR row r = h * query_blocks + qb, times their values. Key blocks
// are frame-aligned: block b covers the keys frame_blocks::key_span gives (core/block_geometry.h, the one copy of
// the rules that the library's BlockMask, the planners and these kernels share).
// A row with no block writes zeros. A mask listing every block reproduces dense attention.
// q/k/v/out pointers, strides, lq/lk/heads/head_dim/scale: as in FlashAttentionParams (flash_attention.h).
#include <string>

#include "kernels/attention/flash_attention.h"

namespace lf::gpu {

struct BlockSparseLayout {
  const int* row_offsets = nullptr;  // device, [heads * query_blocks + 1], row_offsets[0] = 0
  const int* key_indices = nullptr;  // device, row r's blocks at [row_offsets[r], row_offsets[r + 1]), ascending
  int query_block = 0;               // 64 or 128 (see the supported combinations below)
  int key_block = 0;                 // 64 or 128
  int tokens_per_frame = 0;          // lk must be a whole number of frames
  int heads = 0;                     // must equal params.heads
  int query_blocks = 0;              // must equal ceil(lq / query_block)
};

// Supported (query_block, key_block) per variant; the kernel's query tile is the mask's query block:
//   mma_sync  (64, 64) (64, 128) (128, 64) (128, 128)   128-key blocks run as two 64-key tiles
//   hopper    (128, 64) (128, 128)                        64-key blocks fill half of the 128-key tile
// Auto (and LF_FLASH_VARIANT, as for dense) picks hopper for (128, 128) when the device and build have it,
// mma_sync otherwise. Indices outside [0, key_blocks) are ignored (they add no key), never read out of bounds.

// The one selector behind both functions below (the dense checks of flash_attention_select plus the layout's).
bool flash_attention_block_sparse_select(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                         FlashVariant requested, FlashVariant* chosen, std::string* why);

bool flash_attention_block_sparse_supported(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                            FlashVariant variant, std::string* why);

// Launches asynchronously on `stream` (a cudaStream_t; null = the legacy default stream). Unsupported
// parameters throw lf::Error naming the value; launch errors throw lf::Error from LF_CUDA_CHECK.
void flash_attention_block_sparse_forward(const FlashAttentionParams& params, const BlockSparseLayout& layout,
                                          FlashVariant variant = FlashVariant::Auto, void* stream = nullptr);

}  // namespace lf::gpu
