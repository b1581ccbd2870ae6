#pragma once
// The frame-aligned block geometry of sparse attention, written once for the host (the library's BlockMask, the
// CPU planners, tests) and the device (the block-sparse kernels, the GPU planners, the RoPE-and-pool pass, labs).
// Plain C++ includes it without CUDA; nvcc sees the same functions as __host__ __device__. Like core/error.h it is
// a leaf: kernels/ may include it.
//
// Query blocks tile the chunk's query tokens uniformly (query_block tokens each, the last one ragged). Key blocks
// never straddle two frames: frame f holds blocks [f * blocks_per_frame, (f + 1) * blocks_per_frame), each
// key_block tokens long except the frame's last one (its tail), which is ragged when tokens_per_frame is not a
// multiple (1560 = 24 x 64 + 24: 25 blocks of which the last holds 24 tokens). Keys are the visible frames in
// cache order, the current chunk last.
//
// The rules are templates on the integer type: the kernels compute in int, the host in int64_t.
#include <cstdint>

#if defined(__CUDACC__)
#define LF_HOST_DEVICE __host__ __device__
#else
#define LF_HOST_DEVICE
#endif

namespace lf::frame_blocks {

template <class Int>
LF_HOST_DEVICE constexpr Int blocks_per_frame(Int tokens_per_frame, Int key_block) {
  return (tokens_per_frame + key_block - 1) / key_block;
}

template <class Int>
LF_HOST_DEVICE constexpr Int query_blocks(Int query_tokens, Int query_block) {
  return (query_tokens + query_block - 1) / query_block;
}

// Tokens of query block qb (the last one ragged).
template <class Int>
LF_HOST_DEVICE constexpr Int query_block_length(Int qb, Int query_tokens, Int query_block) {
  const Int rest = query_tokens - qb * query_block;
  return rest < query_block ? rest : query_block;
}

// Tokens of the block at position `inside_block` within its frame (the frame's last one ragged).
template <class Int>
LF_HOST_DEVICE constexpr Int in_frame_block_length(Int inside_block, Int tokens_per_frame, Int key_block) {
  const Int rest = tokens_per_frame - inside_block * key_block;
  return rest < key_block ? rest : key_block;
}

// Tokens of a frame's last block: key_block when tokens_per_frame is a multiple, else the remainder.
template <class Int>
LF_HOST_DEVICE constexpr Int frame_tail_length(Int tokens_per_frame, Int key_block) {
  return tokens_per_frame - (blocks_per_frame(tokens_per_frame, key_block) - 1) * key_block;
}

// The keys of key block b: its frame, first key token and length.
template <class Int>
struct KeySpan {
  Int frame, first, length;
};
template <class Int>
LF_HOST_DEVICE constexpr KeySpan<Int> key_span(Int b, Int tokens_per_frame, Int key_block, Int blocks_per_frame) {
  const Int frame = b / blocks_per_frame;
  const Int inside = (b - frame * blocks_per_frame) * key_block;
  const Int rest = tokens_per_frame - inside;
  return {frame, frame * tokens_per_frame + inside, rest < key_block ? rest : key_block};
}

// Whether key block b is its frame's last (the ragged tail when tokens_per_frame is not a multiple).
template <class Int>
LF_HOST_DEVICE constexpr bool is_frame_tail(Int b, Int blocks_per_frame) {
  return b % blocks_per_frame == blocks_per_frame - 1;
}

}  // namespace lf::frame_blocks

namespace lf {

// One call's block geometry: the shapes the rules above apply to.
template <class Int>
struct BasicBlockGeometry {
  Int tokens_per_frame = 0;
  Int query_tokens = 0;  // current chunk's tokens
  Int key_frames = 0;    // visible frames (cache + chunk)
  Int query_block = 64;  // 64 or 128
  Int key_block = 64;    // 64 or 128

  LF_HOST_DEVICE constexpr Int query_blocks() const { return frame_blocks::query_blocks(query_tokens, query_block); }
  LF_HOST_DEVICE constexpr Int blocks_per_frame() const {
    return frame_blocks::blocks_per_frame(tokens_per_frame, key_block);
  }
  LF_HOST_DEVICE constexpr Int key_blocks() const { return key_frames * blocks_per_frame(); }
  LF_HOST_DEVICE constexpr Int key_tokens() const { return key_frames * tokens_per_frame; }
  LF_HOST_DEVICE constexpr frame_blocks::KeySpan<Int> key_span(Int b) const {
    return frame_blocks::key_span(b, tokens_per_frame, key_block, blocks_per_frame());
  }
  LF_HOST_DEVICE constexpr Int key_block_start(Int b) const { return key_span(b).first; }
  LF_HOST_DEVICE constexpr Int key_block_length(Int b) const { return key_span(b).length; }
  LF_HOST_DEVICE constexpr Int key_block_frame(Int b) const { return b / blocks_per_frame(); }
  LF_HOST_DEVICE constexpr Int query_block_length(Int qb) const {
    return frame_blocks::query_block_length(qb, query_tokens, query_block);
  }
};

using BlockGeometry = BasicBlockGeometry<int64_t>;

}  // namespace lf
