#pragma once
// Flash attention forward, version 1: mma.sync m16n8k16 (sm_80+; the portable path on Hopper).
//
// One CTA = one (query block of kBlockM rows, head). Each warp owns kRowTiles x 16 query rows end to end:
//   prologue  Q tile -> shared (cp.async); with one row tile also -> registers (ldmatrix) for the whole loop
//   mainloop  for each key block of the schedule: S = Q K^T (ldmatrix K), online softmax, O += P V
//             (ldmatrix.trans V), with the K/V tiles of the next kStages-1 blocks already in flight; every K/V
//             fragment loaded feeds kRowTiles MMAs (the default 2 halves shared-memory traffic per MMA, which is
//             what limits mma.sync here: 245-267 -> 272-289 TFLOP/s on the H200)
//   epilogue  O / rowsum -> bf16 -> global
// K and V of a block are separate cp.async groups, so S = Q K^T and the softmax start before V has landed.
#include <cuda_runtime.h>

#include "kernels/attention/flash_block_schedule.cuh"
#include "kernels/attention/flash_mma_primitives.cuh"
#include "kernels/attention/flash_softmax.cuh"
#include "kernels/attention/flash_tile_traits.cuh"
#include "kernels/cuda_check.h"

namespace lf::gpu::flash {

template <class Traits, class Schedule>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocksPerSm)
    flash_fwd_mma_kernel(const FlashKernelArgs args, const Schedule schedule) {
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kStages = Traits::kStages;
  constexpr int kThreads = Traits::kThreads;
  constexpr int kRowBytes = Traits::kRowBytes;
  constexpr int kDimSteps = kHeadDim / 16;   // k-steps of S = Q K^T
  constexpr int kKeyTiles = kBlockN / 8;     // 8-column tiles of S
  constexpr int kOutTiles = kHeadDim / 8;    // 8-column tiles of O

  extern __shared__ __align__(128) uint8_t shared_bytes[];
  const uint32_t q_tile = shared_address(shared_bytes);
  const uint32_t k_ring = q_tile + Traits::kQTileBytes;
  const uint32_t v_ring = k_ring + kStages * Traits::kKVTileBytes;

  const int q_block = blockIdx.x;
  const int head = blockIdx.y;
  const int thread = threadIdx.x;
  const int warp = thread / 32;
  const int lane = thread % 32;
  const int first_query = q_block * kBlockM;
  const int valid_queries = min(kBlockM, args.lq - first_query);
  const int num_blocks = schedule.count(head, q_block);

  const __nv_bfloat16* k_head = args.k + head * kHeadDim;
  const __nv_bfloat16* v_head = args.v + head * kHeadDim;
  // Issues the K group and the V group of the i-th scheduled block (empty groups past the end keep the group
  // arithmetic of the waits below constant).
  auto issue_block_loads = [&](int i) {
    if (i < num_blocks) {
      const KeyBlock block = schedule.block(head, q_block, i);
      const int stage = i % kStages;
      load_tile_async<kBlockN, kHeadDim, kThreads>(k_ring + stage * Traits::kKVTileBytes, k_head, args.k_row_stride,
                                                   block.first_key, block.valid_keys, thread);
      cp_async_commit();
      load_tile_async<kBlockN, kHeadDim, kThreads>(v_ring + stage * Traits::kKVTileBytes, v_head, args.v_row_stride,
                                                   block.first_key, block.valid_keys, thread);
      cp_async_commit();
    } else {
      cp_async_commit();
      cp_async_commit();
    }
  };

  load_tile_async<kBlockM, kHeadDim, kThreads>(q_tile, args.q + head * kHeadDim, args.q_row_stride, first_query,
                                               valid_queries, thread);
  cp_async_commit();
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) issue_block_loads(i);

  // Q as m16n8k16 A fragments: lanes 0-15 address rows 0-15 of a 16-row tile at chunk 2 kk, lanes 16-31 the
  // same rows at chunk 2 kk + 1 (matrices a0..a3 in the order the MMA wants them). With one row tile they are
  // loaded once into registers; with two they are re-read per k-step (registers go to the second O tile).
  constexpr int kRowTiles = Traits::kRowTiles;
  const uint32_t q_lane_offset = uint32_t((warp * Traits::kRowsPerWarp + (lane & 15)) * kRowBytes);
  auto load_q_fragment = [&](uint32_t (&frag)[4], int row_tile, int kk) {
    ldmatrix_x4(frag, q_tile + q_lane_offset + row_tile * 16 * kRowBytes +
                          (((2 * kk + (lane >> 4)) ^ (lane & 7)) << 4));  // row & 7 == lane & 7
  };
  cp_async_wait<2 * (kStages - 1)>();
  __syncthreads();
  uint32_t q_frag[Traits::kQInRegisters ? kDimSteps : 1][4];
  if constexpr (Traits::kQInRegisters) {
#pragma unroll
    for (int kk = 0; kk < kDimSteps; ++kk) load_q_fragment(q_frag[kk], 0, kk);
  }

  // Per-lane parts of the K and V ldmatrix addresses. K (non-transposed, B operand of S = Q K^T): lanes 0-7 rows
  // 0-7 chunk c, 8-15 rows 0-7 chunk c+1, 16-23 rows 8-15 chunk c, 24-31 rows 8-15 chunk c+1 -> b0/b1 of two
  // adjacent 8-key tiles. V (transposed, B operand of O += P V): lanes 0-7 keys 0-7, 8-15 keys 8-15 (chunk c),
  // 16-31 the same keys at chunk c+1 -> b0/b1 of two adjacent 8-dim tiles.
  const int k_lane_row = (lane & 7) + ((lane >> 4) << 3);
  const int k_lane_chunk = (lane >> 3) & 1;
  const int v_lane_row = lane & 15;
  const int v_lane_chunk = lane >> 4;

  float o_acc[kRowTiles][kOutTiles][4];
  OnlineSoftmax<kKeyTiles> softmax[kRowTiles];
#pragma unroll
  for (int t = 0; t < kRowTiles; ++t) {
#pragma unroll
    for (int j = 0; j < kOutTiles; ++j) o_acc[t][j][0] = o_acc[t][j][1] = o_acc[t][j][2] = o_acc[t][j][3] = 0.f;
    softmax[t].init();
  }

  for (int i = 0; i < num_blocks; ++i) {
    const int stage = i % kStages;
    const uint32_t k_tile = k_ring + stage * Traits::kKVTileBytes;
    const uint32_t v_tile = v_ring + stage * Traits::kKVTileBytes;

    // K_i landed (groups younger than it: V_i and blocks i+1 .. i+kStages-2). The barrier also means every warp
    // left iteration i-1, so stage (i-1) % kStages can be refilled.
    cp_async_wait<2 * kStages - 3>();
    __syncthreads();
    issue_block_loads(i + kStages - 1);

    float s[kRowTiles][kKeyTiles][4];
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t)
#pragma unroll
      for (int j = 0; j < kKeyTiles; ++j) s[t][j][0] = s[t][j][1] = s[t][j][2] = s[t][j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kDimSteps; ++kk) {
      uint32_t q_step[kRowTiles][4];
      if constexpr (!Traits::kQInRegisters) {
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) load_q_fragment(q_step[t], t, kk);
      }
#pragma unroll
      for (int pair = 0; pair < kKeyTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4(b, k_tile + swizzled_offset<kRowBytes>(pair * 16 + k_lane_row, 2 * kk + k_lane_chunk));
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) {
          const uint32_t(&a)[4] = Traits::kQInRegisters ? q_frag[Traits::kQInRegisters ? kk : 0] : q_step[t];
          mma_m16n8k16_bf16(s[t][2 * pair], a, b[0], b[1]);
          mma_m16n8k16_bf16(s[t][2 * pair + 1], a, b[2], b[3]);
        }
      }
    }

    const KeyBlock block = schedule.block(head, q_block, i);
    uint32_t p_frag[kRowTiles][kKeyTiles / 2][4];
#pragma unroll
    for (int t = 0; t < kRowTiles; ++t) {
      if (block.valid_keys < kBlockN) mask_columns(s[t], block.valid_keys, lane);
      float rescale[2];
      softmax[t].update(s[t], args.scale_log2, rescale);
      scale_rows(o_acc[t], rescale);
      probabilities_to_a_fragments(s[t], p_frag[t]);
    }

    cp_async_wait<2 * kStages - 2>();  // V_i landed
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
#pragma unroll
      for (int pair = 0; pair < kOutTiles / 2; ++pair) {
        uint32_t b[4];
        ldmatrix_x4_trans(b, v_tile + swizzled_offset<kRowBytes>(kk * 16 + v_lane_row, 2 * pair + v_lane_chunk));
#pragma unroll
        for (int t = 0; t < kRowTiles; ++t) {
          mma_m16n8k16_bf16(o_acc[t][2 * pair], p_frag[t][kk], b[0], b[1]);
          mma_m16n8k16_bf16(o_acc[t][2 * pair + 1], p_frag[t][kk], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();  // nothing may stay in flight into shared memory when the CTA retires

  __nv_bfloat16* out_block = args.out + int64_t(first_query) * args.out_row_stride + head * kHeadDim;
#pragma unroll
  for (int t = 0; t < kRowTiles; ++t) {
    float inv_sum[2];
    softmax[t].finish(inv_sum);
    store_output_rows(o_acc[t], inv_sum, out_block, args.out_row_stride, warp * Traits::kRowsPerWarp + 16 * t,
                      valid_queries, lane);
  }
}

template <class Traits, class Schedule>
void launch_flash_fwd_mma(const FlashKernelArgs& args, const Schedule& schedule, cudaStream_t stream) {
  auto kernel = flash_fwd_mma_kernel<Traits, Schedule>;
  LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes),
                "flash attention (mma.sync) shared memory {} bytes", Traits::kSmemBytes);
  const dim3 grid((args.lq + Traits::kBlockM - 1) / Traits::kBlockM, args.heads);
  kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(args, schedule);
  LF_CUDA_LAUNCH_CHECK("flash attention (mma.sync) lq {} lk {} heads {} head_dim {}", args.lq, args.lk, args.heads,
                       Traits::kHeadDim);
}

// Dense attention with the default tiles (flash_fwd_mma.cu); head_dim 64 or 128.
void run_flash_fwd_mma_dense(const FlashKernelArgs& args, int head_dim, cudaStream_t stream);

}  // namespace lf::gpu::flash
