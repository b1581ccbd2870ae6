#pragma once
// Tile shapes of every flash attention kernel in one place, and the argument block the kernels share.
// Constants marked "tuned" were chosen by measurement on the H200 (see docs/attention-kernel.md); the rest
// follow from the instruction shapes.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention/flash_attention.h"

namespace lf::gpu::flash {

// What every forward kernel reads; built once on the host from FlashAttentionParams.
struct FlashKernelArgs {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  __nv_bfloat16* out;
  int64_t q_row_stride, k_row_stride, v_row_stride, out_row_stride;  // elements
  int lq, lk, heads;
  float scale_log2;  // scale * log2(e): softmax runs on exp2
};

// The one conversion from the public parameters (dense and block-sparse entry points share it).
inline FlashKernelArgs make_kernel_args(const FlashAttentionParams& params) {
  constexpr double kLog2e = 1.4426950408889634;
  return {static_cast<const __nv_bfloat16*>(params.q),
          static_cast<const __nv_bfloat16*>(params.k),
          static_cast<const __nv_bfloat16*>(params.v),
          static_cast<__nv_bfloat16*>(params.out),
          params.q_row_stride,
          params.k_row_stride,
          params.v_row_stride,
          params.out_row_stride,
          params.lq,
          params.lk,
          params.heads,
          float(double(params.scale) * kLog2e)};
}

// Version 1: mma.sync m16n8k16 (bf16 -> fp32). A warp owns kRowTiles x 16 query rows; K/V stream through a
// cp.async ring of kStages (K tile, V tile) pairs. With one row tile Q fragments live in registers for the whole
// key loop; with two, each K/V fragment feeds two MMAs (half the ldmatrix traffic per MMA) and Q is re-read from
// shared memory to stay within 255 registers.
//
// tuned on the H200 (lab_attention, Lq 4680, 12 heads, head_dim 128, Lk 4680..32760, TFLOP/s):
//   2 row tiles (32 rows/warp), 4 warps, 64 keys, 2 stages  272-289  (default: BLOCK_M 128, 2 CTAs/SM)
//   2 row tiles, 8 warps, 2 stages                          275-295  (BLOCK_M 256: one CTA/SM, coarse waves)
//   2 row tiles, 4 warps, 3 stages                          203-214  (128 KB shared: one CTA/SM)
//   1 row tile (Q in registers), 4 warps, 3 stages          245-267;  8 warps 244-261;  2 stages 247-265
//   1 row tile, 128 keys 217-239 (spills);  32 keys with 3 CTAs/SM 227-257
template <int kHeadDim_, int kWarps_ = 4, int kBlockN_ = 64, int kStages_ = 2, int kMinBlocksPerSm_ = 1,
          int kRowTiles_ = 2>
struct MmaSyncTileTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kWarps = kWarps_;      // tuned
  static constexpr int kBlockN = kBlockN_;    // tuned: keys per pipeline step
  static constexpr int kStages = kStages_;    // tuned: depth of the K/V ring
  static constexpr int kMinBlocksPerSm = kMinBlocksPerSm_;  // __launch_bounds__ occupancy hint (caps registers)
  static constexpr int kRowTiles = kRowTiles_;  // tuned: m16 tiles per warp
  static constexpr bool kQInRegisters = kRowTiles == 1;
  static constexpr int kRowsPerWarp = 16 * kRowTiles;
  static constexpr int kBlockM = kWarps * kRowsPerWarp;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kRowBytes = kHeadDim * 2;
  static constexpr int kChunksPerRow = kRowBytes / 16;  // 16-byte cp.async / ldmatrix units
  static constexpr int kQTileBytes = kBlockM * kRowBytes;
  static constexpr int kKVTileBytes = kBlockN * kRowBytes;
  static constexpr int kSmemBytes = kQTileBytes + 2 * kStages * kKVTileBytes;

  static_assert(kHeadDim % 64 == 0, "the XOR swizzle needs >= 8 16-byte chunks per row");
  static_assert(kBlockN % 16 == 0 && kStages >= 2, "key tiles are whole m16n8k16 k-steps; the ring needs 2 stages");
  static_assert((kBlockN * kChunksPerRow) % kThreads == 0 && (kBlockM * kChunksPerRow) % kThreads == 0,
                "tile loads are split evenly over the threads");
};

// Version 2: Hopper. Warp group 0 produces (TMA loads of Q once and of K/V into a kStages ring), warp groups 1..2
// consume: each owns 64 query rows (the m64 of wgmma), computes S = Q K^T with both operands in shared memory and
// O += P V with P from registers. Shared tiles use the 128-byte swizzle, split into 64-column (128-byte) slabs.
template <int kHeadDim_, int kBlockN_ = 128, int kStages_ = 3, bool kPingPong_ = true, bool kSplitPvN_ = false,
          int kQBuffers_ = 1>
struct HopperTileTraits {
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockN = kBlockN_;  // tuned: keys per pipeline step (also the wgmma N of S = Q K^T)
  // tuned: depth of the K/V ring. 3 stages (224 KB with Q at head_dim 128) measured 536-597 TFLOP/s on the H200
  // against 387-410 with 2: with 2, the producer can refill a slot only after both consumers finished P V on it,
  // and the next K tile arrives late.
  static constexpr int kStages = kStages_;
  // tuned: consumer warp groups take turns issuing their GEMMs (named barriers), so one's softmax runs under the
  // other's tensor-core work; off = both issue whenever ready. Measured equal on the H200 (533-601 vs 534-601
  // TFLOP/s), kept on as the schedule that does not depend on the warp scheduler's luck.
  static constexpr bool kPingPong = kPingPong_;
  // O += P V as two n64 wgmmas (one per slab) instead of one n128: a fallback that does not rely on the
  // leading-byte offset of the transposed-B descriptor. Both are correct on the H200; split is ~1% slower.
  static constexpr bool kSplitPvN = kSplitPvN_;
  // Q tiles in shared memory. With 2 the producer loads the next work item's Q while the consumers still read this
  // one's (short sparse rows: the Q load is otherwise exposed once per item); at head_dim 128 that costs a K/V
  // stage (2 Q + 3 stages is over 227 KB). Experiment: instantiated by lab_sparse only (kernels/sparse/lab_sparse_hopper.cuh).
  static constexpr int kQBuffers = kQBuffers_;
  static constexpr int kConsumerWarpgroups = 2;
  static constexpr int kRowsPerConsumer = 64;  // the m64 of wgmma
  static constexpr int kBlockM = kConsumerWarpgroups * kRowsPerConsumer;
  static constexpr int kThreads = (1 + kConsumerWarpgroups) * 128;
  // setmaxnreg budget. The CTA starts with the launch-bounds allocation (65536 / 384 -> 168 per thread) and
  // setmaxnreg.inc can only take what setmaxnreg.dec gave back inside the CTA, so the split must fit in
  // 168 * 384: 24 * 128 + 240 * 256 = 64512 exactly (with 32 for the producer the consumers wait forever).
  static constexpr int kProducerRegisters = 24;   // the producer only issues TMA
  static constexpr int kConsumerRegisters = 240;  // O, S and P fragments of 64 rows x 128 columns
  static constexpr int kLaunchRegisters = (65536 / kThreads) / 8 * 8;
  static constexpr int kSlabCols = 64;            // 128-byte swizzle atom width in bf16 elements
  static constexpr int kSlabs = kHeadDim / kSlabCols;
  static constexpr int kQSlabBytes = kBlockM * 128;
  static constexpr int kKVSlabBytes = kBlockN * 128;
  static constexpr int kQTileBytes = kSlabs * kQSlabBytes;
  static constexpr int kKVTileBytes = kSlabs * kKVSlabBytes;
  // Q[kQBuffers], then K[kStages], then V[kStages]; every tile starts on a 1024-byte boundary (swizzle atom), plus
  // the mbarriers (q_full/q_empty per Q buffer, k_full/v_full/kv_empty per stage), the producer's notes to the
  // consumers (valid keys per stage, tile count per work item, double-buffered) and 1024 bytes of slack to align the
  // dynamic shared memory base.
  static constexpr int kBarrierBytes = 8 * (2 * kQBuffers + 3 * kStages) + 4 * (kStages + 2);
  static constexpr int kSmemBytes = kQBuffers * kQTileBytes + 2 * kStages * kKVTileBytes + 1024 + kBarrierBytes;

  static_assert(kHeadDim % kSlabCols == 0, "head_dim must be whole 128-byte slabs");
  static_assert(kQBuffers == 1 || kQBuffers == 2, "one Q tile, or two alternating by work item");
  static_assert(kBlockN % 16 == 0 && kBlockN <= 256, "wgmma N and the TMA box");
  static_assert(kSmemBytes <= 227 * 1024, "over the 227 KB of shared memory a Hopper block can have");
  static_assert(kProducerRegisters * 128 + kConsumerRegisters * 128 * kConsumerWarpgroups <=
                    kLaunchRegisters * kThreads,
                "setmaxnreg split exceeds the registers the CTA is launched with");
};

// The configurations the public API dispatches to (the lab also times the others).
template <int kHeadDim>
using MmaSyncDefaultTraits = MmaSyncTileTraits<kHeadDim>;
template <int kHeadDim>
using HopperDefaultTraits = HopperTileTraits<kHeadDim>;

}  // namespace lf::gpu::flash
