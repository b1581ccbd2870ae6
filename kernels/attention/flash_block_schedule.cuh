#pragma once
// Key-block schedules: which key blocks a (head, query block) tile visits, and how many keys of each are valid.
//
// This is the seam where block-sparse attention plugs in. The main loops of both kernels only ask a schedule
//   count(head, q_block)        -> number of key blocks to visit
//   block(head, q_block, i)     -> KeyBlock {first key, valid keys (1..kBlockN)} of the i-th visit
// and never compute key offsets themselves. Keys past `valid_keys` inside a visited block get score -inf, so a
// schedule may describe ragged blocks anywhere in the sequence (a frame of 1560 tokens split into 128-key
// blocks), not only the last one. Loads of rows past the end of the key tensor are zero-filled.
#include <cstdint>

namespace lf::gpu::flash {

struct KeyBlock {
  int first_key;   // token index of the block's first key
  int valid_keys;  // keys [first_key, first_key + valid_keys) take part; 1..kBlockN (0 never happens)
};

// Dense: every key block 0 .. ceil(lk / kBlockN) - 1, the last one ragged.
template <int kBlockN>
struct DenseKeyBlocks {
  int lk = 0;

  __device__ __forceinline__ int count(int /*head*/, int /*q_block*/) const { return (lk + kBlockN - 1) / kBlockN; }
  __device__ __forceinline__ KeyBlock block(int /*head*/, int /*q_block*/, int i) const {
    const int first = i * kBlockN;
    const int rest = lk - first;
    return {first, rest < kBlockN ? rest : kBlockN};
  }
};

// Block-sparse (next milestone: not yet reachable from the public API, but both kernels run it in lab_attention
// against a masked CPU reference, including an empty row and cut-short blocks): a CSR-style list
// per (head, query block). Row r = head * num_q_blocks + q_block visits key blocks
// block_index[row_begin[r] .. row_begin[r + 1]), each of kBlockN keys starting at block_index * kBlockN, and
// optionally only block_valid_keys[same slot] of them (null = full blocks, clipped at lk).
template <int kBlockN>
struct SparseKeyBlocks {
  const int* row_begin = nullptr;         // [heads * num_q_blocks + 1]
  const int* block_index = nullptr;       // [row_begin[last]]
  const int* block_valid_keys = nullptr;  // optional, same indexing as block_index
  int num_q_blocks = 0;
  int lk = 0;

  __device__ __forceinline__ int count(int head, int q_block) const {
    const int row = head * num_q_blocks + q_block;
    return row_begin[row + 1] - row_begin[row];
  }
  __device__ __forceinline__ KeyBlock block(int head, int q_block, int i) const {
    const int slot = row_begin[head * num_q_blocks + q_block] + i;
    const int first = block_index[slot] * kBlockN;
    int valid = lk - first < kBlockN ? lk - first : kBlockN;
    if (block_valid_keys != nullptr && block_valid_keys[slot] < valid) valid = block_valid_keys[slot];
    return {first, valid};
  }
};

}  // namespace lf::gpu::flash
