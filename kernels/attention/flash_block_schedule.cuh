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

#include "core/block_geometry.h"

namespace lf::gpu::flash {

struct KeyBlock {
  int first_key;   // token index of the block's first key (always inside the key tensor)
  int valid_keys;  // keys [first_key, first_key + valid_keys) take part; 0..kBlockN. Dense and CSR schedules give
                   // 1..kBlockN; FrameAlignedSparseKeyBlocks may give 0 (an empty second half of a ragged block,
                   // an out-of-range index): every score is then -inf and the visit changes nothing.
};

// Dense: every key block 0 .. ceil(lk / kBlockN) - 1, the last one ragged.
template <int kBlockN>
struct DenseKeyBlocks {
  static constexpr bool kPacksPieces = false;
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
  static constexpr bool kPacksPieces = false;
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

// Block-sparse over lf::BlockMask's frame-aligned key blocks (the public block-sparse API): CSR row
// r = head * query_blocks + q_block lists mask block indices; block b covers frame_blocks::key_span
// (core/block_geometry.h), so blocks never straddle frames and the last of a frame is ragged.
// The kernel's query tile must equal the mask's query block (q_block is the mask row's query block).
// A mask block longer than the kernel's key tile (128-key blocks on the 64-key mma.sync tile) is visited as
// steps_per_block consecutive tiles; the second half of a ragged block may be empty (valid_keys 0).
// Indices are read through the read-only cache: both kernels look a block up twice (load, then mask), and the
// second lookup sits on the consumer's critical path.
//
// Tail packing (Hopper producer only, piece_rows > 0): a 1560-token frame is 12 blocks of 128 plus a 24-key tail,
// and a tail visited as a tile of its own costs a whole 128-key tile of tensor-core work for 24 keys (6.7% more
// tiles than tokens on a full mask). With packing, the full blocks of a row are visited as before, and its tails
// are gathered `pieces_per_tile` at a time into one tile: each tail is a separate TMA box of piece_rows rows placed
// at row j * piece_rows of the tile, and the tile's valid keys are the packed prefix. Softmax does not care which
// keys share a tile, so the result is the same attention up to summation order. count() is then not a plain
// difference of offsets: the producer warp counts the row's tails (tiles_in_row).
template <int kBlockN>
struct FrameAlignedSparseKeyBlocks {
  static constexpr bool kPacksPieces = true;
  static constexpr int kMaxPiecesPerTile = 8;
  const int* row_offsets = nullptr;  // [heads * query_blocks + 1], device
  const int* key_indices = nullptr;  // ascending within a row (not required: any order gives the same softmax)
  int query_blocks = 0;
  int key_block = 0;         // tokens per mask block, <= kBlockN * steps_per_block
  int tokens_per_frame = 0;
  int blocks_per_frame = 0;  // ceil(tokens_per_frame / key_block)
  int key_blocks = 0;        // frames * blocks_per_frame; indices outside [0, key_blocks) contribute nothing
  int steps_per_block = 1;   // 1 or 2
  int piece_rows = 0;        // > 0: tails (blocks_per_frame - 1 of each frame) are packed, this many rows each
  int pieces_per_tile = 1;   // kBlockN / piece_rows, at most kMaxPiecesPerTile

  __device__ __forceinline__ bool is_packed_tail(int b) const {
    return piece_rows > 0 && b >= 0 && b < key_blocks && frame_blocks::is_frame_tail(b, blocks_per_frame);
  }
  __device__ __forceinline__ int block_first_key(int b) const {
    return frame_blocks::key_span(b, tokens_per_frame, key_block, blocks_per_frame).first;
  }

  // Tiles the Hopper producer visits for this row; every lane of one warp calls it and gets the same value.
  __device__ __forceinline__ int tiles_in_row(int head, int q_block, int lane) const {
    const int row = head * query_blocks + q_block;
    const int begin = __ldg(row_offsets + row), end = __ldg(row_offsets + row + 1);
    if (piece_rows == 0) return (end - begin) * steps_per_block;
    int tails = 0;
    for (int j = begin + lane; j < end; j += 32) tails += is_packed_tail(__ldg(key_indices + j)) ? 1 : 0;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) tails += __shfl_xor_sync(0xffffffffu, tails, offset);
    return (end - begin - tails) + (tails + pieces_per_tile - 1) / pieces_per_tile;
  }

  // Calls load.block(KeyBlock) for each whole tile and load.pieces(first_keys, n) for each packed tile, in visit
  // order, exactly tiles_in_row() times. One thread.
  template <class Load>
  __device__ __forceinline__ void for_each_tile(int head, int q_block, Load& load) const {
    const int row = head * query_blocks + q_block;
    const int begin = __ldg(row_offsets + row), end = __ldg(row_offsets + row + 1);
    if (piece_rows == 0) {
      const int visits = (end - begin) * steps_per_block;
      for (int i = 0; i < visits; ++i) load.block(block(head, q_block, i));
      return;
    }
    int pending[kMaxPiecesPerTile];
    int held = 0;
    for (int j = begin; j < end; ++j) {
      const int b = __ldg(key_indices + j);
      if (!is_packed_tail(b)) {
        load.block(block_at(b, 0));
        continue;
      }
      pending[held++] = block_first_key(b);
      if (held == pieces_per_tile) {
        load.pieces(pending, held);
        held = 0;
      }
    }
    if (held > 0) load.pieces(pending, held);
  }

  __device__ __forceinline__ int count(int head, int q_block) const {
    const int row = head * query_blocks + q_block;
    return (__ldg(row_offsets + row + 1) - __ldg(row_offsets + row)) * steps_per_block;
  }
  __device__ __forceinline__ KeyBlock block(int head, int q_block, int i) const {
    const int step = steps_per_block == 1 ? 0 : (i & 1);
    const int slot = __ldg(row_offsets + head * query_blocks + q_block) + (steps_per_block == 1 ? i : (i >> 1));
    return block_at(__ldg(key_indices + slot), step);
  }
  // Step `step` (0 or 1) of mask block b.
  __device__ __forceinline__ KeyBlock block_at(int b, int step) const {
    if (b < 0 || b >= key_blocks) return {0, 0};
    const frame_blocks::KeySpan<int> span = frame_blocks::key_span(b, tokens_per_frame, key_block, blocks_per_frame);
    const int length = span.length;
    const int offset = step * kBlockN;
    const int first = span.first;
    if (length <= offset) return {first, 0};  // keep the address inside the tensor
    return {first + offset, min(kBlockN, length - offset)};
  }
};

}  // namespace lf::gpu::flash
