#pragma once
// Flash attention forward, version 2: Hopper (sm_90a) — TMA + wgmma with warp specialisation.
//
// One CTA = one (query block of 128 rows, head), 3 warp groups:
//   producer   (warp group 0, one thread): TMA loads of the Q tile once, then K and V tiles of each scheduled key
//              block into a kStages ring; "full" mbarriers count the bytes in, "empty" mbarriers say a slot's
//              readers are done. It hands most of its registers to the consumers (setmaxnreg).
//   consumers  (warp groups 1, 2; 64 query rows each):
//              S = Q K^T   wgmma m64n128k16, both operands in shared memory (SS)
//              softmax     fp32 online softmax in registers (flash_softmax.cuh, same fragment layout as mma.sync)
//              O += P V    wgmma m64nDk16 with P from registers (RS) and V as a transposed (MN-major) operand
// Overlap inside a consumer: iteration i issues S_i = Q K_i^T and O += P_{i-1} V_{i-1} back to back, then does the
// softmax of S_i while the P V product still runs; only the rescale of O waits for it.
// Overlap across consumers (kPingPong): the two warp groups take turns issuing their GEMMs through two named
// barriers, so one's softmax runs while the other's GEMMs occupy the tensor cores.
#include <cuda.h>
#include <cuda_runtime.h>

#include "attention/flash_block_schedule.cuh"
#include "attention/flash_hopper_primitives.cuh"
#include "attention/flash_softmax.cuh"
#include "attention/flash_tile_traits.cuh"
#include "cuda_check.h"

namespace lf::gpu::flash {

// Bytes of static shared memory the stub (non-sm_90a) build of the kernel declares; the real kernel has none.
// The host reads it back with cudaFuncGetAttributes to learn, without a launch, which build is loaded.
constexpr int kHopperStubMarkerBytes = 16;

template <class Traits, class Schedule>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    flash_fwd_hopper_kernel(const FlashKernelArgs args, const Schedule schedule,
                            const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                            const __grid_constant__ CUtensorMap v_map) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace sm90;
  constexpr int kHeadDim = Traits::kHeadDim;
  constexpr int kBlockM = Traits::kBlockM;
  constexpr int kBlockN = Traits::kBlockN;
  constexpr int kStages = Traits::kStages;
  constexpr int kSlabs = Traits::kSlabs;
  constexpr int kKeyTiles = kBlockN / 8;
  constexpr int kOutTiles = kHeadDim / 8;
  constexpr int kTurnBarrier = 1;  // named barriers 1 and 2 (0 is __syncthreads)
  constexpr int kConsumerThreads = Traits::kConsumerWarpgroups * 128;
  static_assert(kBlockN == 128, "S = Q K^T is issued as wgmma m64n128k16");
  static_assert(kHeadDim == 64 || kHeadDim == 128, "O += P V is issued as wgmma n64 per slab or n128");

  extern __shared__ uint8_t shared_raw[];
  const uint32_t q_tile = (shared_address_of(shared_raw) + 1023u) & ~1023u;  // swizzle atoms are 1024-aligned
  const uint32_t k_ring = q_tile + Traits::kQTileBytes;
  const uint32_t v_ring = k_ring + kStages * Traits::kKVTileBytes;
  const uint32_t barriers = v_ring + kStages * Traits::kKVTileBytes;
  const uint32_t q_full = barriers;
  auto k_full = [&](int stage) { return barriers + 8u * (1 + stage); };
  auto v_full = [&](int stage) { return barriers + 8u * (1 + kStages + stage); };
  auto kv_empty = [&](int stage) { return barriers + 8u * (1 + 2 * kStages + stage); };

  const int q_block = blockIdx.x;
  const int head = blockIdx.y;
  const int warpgroup = threadIdx.x / 128;
  const int num_blocks = schedule.count(head, q_block);

  if (threadIdx.x == 0) {
    mbarrier_init(q_full, 1);
    for (int stage = 0; stage < kStages; ++stage) {
      mbarrier_init(k_full(stage), 1);
      mbarrier_init(v_full(stage), 1);
      mbarrier_init(kv_empty(stage), Traits::kConsumerWarpgroups * 4);  // one arrival per consumer warp
    }
    mbarrier_init_fence();
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ---- producer ----
    release_registers<Traits::kProducerRegisters>();
    if (threadIdx.x == 0) {
      tma_prefetch_descriptor(&q_map);
      tma_prefetch_descriptor(&k_map);
      tma_prefetch_descriptor(&v_map);
      mbarrier_arrive_expect_tx(q_full, Traits::kQTileBytes);
      for (int slab = 0; slab < kSlabs; ++slab)
        tma_load_3d(q_tile + slab * Traits::kQSlabBytes, &q_map, q_full, slab * Traits::kSlabCols, head,
                    q_block * kBlockM);
      for (int i = 0; i < num_blocks; ++i) {
        const int stage = i % kStages;
        mbarrier_wait(kv_empty(stage), ((i / kStages) & 1) ^ 1);  // readers of round i/kStages - 1 are done
        const KeyBlock block = schedule.block(head, q_block, i);
        const uint32_t k_tile = k_ring + stage * Traits::kKVTileBytes;
        const uint32_t v_tile = v_ring + stage * Traits::kKVTileBytes;
        mbarrier_arrive_expect_tx(k_full(stage), Traits::kKVTileBytes);
        for (int slab = 0; slab < kSlabs; ++slab)
          tma_load_3d(k_tile + slab * Traits::kKVSlabBytes, &k_map, k_full(stage), slab * Traits::kSlabCols, head,
                      block.first_key);
        mbarrier_arrive_expect_tx(v_full(stage), Traits::kKVTileBytes);
        for (int slab = 0; slab < kSlabs; ++slab)
          tma_load_3d(v_tile + slab * Traits::kKVSlabBytes, &v_map, v_full(stage), slab * Traits::kSlabCols, head,
                      block.first_key);
      }
    }
    return;
  }

  // ---- consumers ----
  claim_registers<Traits::kConsumerRegisters>();
  const int consumer = warpgroup - 1;
  const int warp_in_group = (threadIdx.x % 128) / 32;
  const int lane = threadIdx.x % 32;
  const bool warp_leader = lane == 0;

  // Turn-taking of the two consumers (kPingPong): a consumer issues GEMMs only after the other has arrived on
  // its barrier. Consumer 1 hands consumer 0 the first turn and skips its own last hand-over, so every barrier
  // sees exactly as many arrivals as waits.
  auto take_turn = [&]() {
    if constexpr (Traits::kPingPong) named_barrier_sync<kConsumerThreads>(kTurnBarrier + consumer);
  };
  auto pass_turn = [&](bool last_turn) {
    if constexpr (Traits::kPingPong)
      if (!(consumer == 1 && last_turn)) named_barrier_arrive<kConsumerThreads>(kTurnBarrier + (1 - consumer));
  };

  float s[kKeyTiles][4];
  float o[kOutTiles][4];
  uint32_t p[kKeyTiles / 2][4];
#pragma unroll
  for (int j = 0; j < kKeyTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
  for (int j = 0; j < kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  OnlineSoftmax<kKeyTiles> softmax;
  softmax.init();

  // K-major descriptors step 16 columns (32 bytes) inside a 128-byte swizzled row, and a slab at a time.
  const uint32_t q_rows = q_tile + consumer * Traits::kRowsPerConsumer * 128;
  auto issue_qk = [&](int stage) {
    const uint32_t k_tile = k_ring + stage * Traits::kKVTileBytes;
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      const uint32_t column_bytes = (kk % 4) * 32;
      const int slab = kk / 4;
      wgmma_m64n128k16_ss(s, smem_descriptor(q_rows + slab * Traits::kQSlabBytes + column_bytes, 16, 1024),
                          smem_descriptor(k_tile + slab * Traits::kKVSlabBytes + column_bytes, 16, 1024), kk > 0);
    }
  };
  // V as the transposed B operand: 16 keys = two 8-row groups (1024 bytes apart); columns = slabs.
  auto issue_pv = [&](int stage) {
    const uint32_t v_tile = v_ring + stage * Traits::kKVTileBytes;
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      const uint32_t keys = v_tile + kk * 16 * 128;
      if constexpr (kHeadDim == 128 && !Traits::kSplitPvN) {
        wgmma_m64n128k16_rs_tb(o, p[kk], smem_descriptor(keys, Traits::kKVSlabBytes, 1024));
      } else {
#pragma unroll
        for (int slab = 0; slab < kSlabs; ++slab)
          wgmma_m64n64k16_rs_tb(*reinterpret_cast<float(*)[8][4]>(&o[8 * slab]), p[kk],
                                smem_descriptor(keys + slab * Traits::kKVSlabBytes, Traits::kKVSlabBytes, 1024));
      }
    }
  };
  auto release_stage = [&](int stage) {
    if (warp_leader) mbarrier_arrive(kv_empty(stage));
  };
  auto mask_ragged = [&](int i) {
    const KeyBlock block = schedule.block(head, q_block, i);
    if (block.valid_keys < kBlockN) mask_columns(s, block.valid_keys, lane);
  };

  mbarrier_wait(q_full, 0);
  if (num_blocks > 0) {
    if constexpr (Traits::kPingPong)
      if (consumer == 1) named_barrier_arrive<kConsumerThreads>(kTurnBarrier + 0);

    // Block 0: S only (there is no P yet).
    mbarrier_wait(k_full(0), 0);
    take_turn();
    wgmma_fence();
    issue_qk(0);
    wgmma_commit();
    pass_turn(false);
    wgmma_wait<0>();
    pin_registers(s);
    mask_ragged(0);
    float rescale[2];
    softmax.update(s, args.scale_log2, rescale);
    probabilities_to_a_fragments(s, p);

    for (int i = 1; i < num_blocks; ++i) {
      const int stage = i % kStages;
      const int previous = (i - 1) % kStages;
      mbarrier_wait(k_full(stage), (i / kStages) & 1);
      mbarrier_wait(v_full(previous), ((i - 1) / kStages) & 1);
      take_turn();
      pin_registers(o);
      pin_registers(p);
      wgmma_fence();
      issue_qk(stage);
      wgmma_commit();
      issue_pv(previous);
      wgmma_commit();
      pass_turn(false);

      wgmma_wait<1>();  // S_i is ready; O += P_{i-1} V_{i-1} may still run
      pin_registers(s);
      mask_ragged(i);
      softmax.update(s, args.scale_log2, rescale);
      wgmma_wait<0>();
      pin_registers(o);
      release_stage(previous);
      scale_rows(o, rescale);
      probabilities_to_a_fragments(s, p);
    }

    const int last = (num_blocks - 1) % kStages;
    mbarrier_wait(v_full(last), ((num_blocks - 1) / kStages) & 1);
    take_turn();
    pin_registers(o);
    pin_registers(p);
    wgmma_fence();
    issue_pv(last);
    wgmma_commit();
    pass_turn(true);
    wgmma_wait<0>();
    pin_registers(o);
    release_stage(last);
  }

  float inv_sum[2];
  softmax.finish(inv_sum);
  const int first_row = q_block * kBlockM + consumer * Traits::kRowsPerConsumer;
  store_output_rows(o, inv_sum, args.out + int64_t(first_row) * args.out_row_stride + head * kHeadDim,
                    args.out_row_stride, warp_in_group * 16, args.lq - first_row, lane);
#elif defined(__CUDA_ARCH__)
  // Built without sm_90a: the host never launches this (see hopper_kernels_built); the marker tells it so.
  __shared__ volatile int stub_marker[kHopperStubMarkerBytes / 4];
  stub_marker[threadIdx.x % (kHopperStubMarkerBytes / 4)] = 0;
  __trap();
#endif
}

// A 3-D TMA view [tokens, heads, head_dim] of one bf16 tensor with boxes of 64 columns x 1 head x box_rows rows
// and the 128-byte swizzle; rows past `tokens` read as zeros.
CUtensorMap make_head_tensor_map(const void* base, int tokens, int heads, int head_dim, int64_t row_stride,
                                 int box_rows);

// Whether the loaded device image has the real sm_90a kernels (built with LF_CUDA_ARCHS=90a), not the stubs.
bool hopper_kernels_built();

template <class Traits, class Schedule>
void launch_flash_fwd_hopper(const FlashKernelArgs& args, const Schedule& schedule, cudaStream_t stream) {
  constexpr int kHeadDim = Traits::kHeadDim;
  const CUtensorMap q_map = make_head_tensor_map(args.q, args.lq, args.heads, kHeadDim, args.q_row_stride,
                                                 Traits::kBlockM);
  const CUtensorMap k_map = make_head_tensor_map(args.k, args.lk, args.heads, kHeadDim, args.k_row_stride,
                                                 Traits::kBlockN);
  const CUtensorMap v_map = make_head_tensor_map(args.v, args.lk, args.heads, kHeadDim, args.v_row_stride,
                                                 Traits::kBlockN);
  auto kernel = flash_fwd_hopper_kernel<Traits, Schedule>;
  LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes),
                "flash attention (hopper) shared memory {} bytes", Traits::kSmemBytes);
  const dim3 grid((args.lq + Traits::kBlockM - 1) / Traits::kBlockM, args.heads);
  kernel<<<grid, Traits::kThreads, Traits::kSmemBytes, stream>>>(args, schedule, q_map, k_map, v_map);
  LF_CUDA_LAUNCH_CHECK("flash attention (hopper) lq {} lk {} heads {} head_dim {}", args.lq, args.lk, args.heads,
                       kHeadDim);
}

// Dense attention with the default tiles (flash_fwd_hopper.cu); head_dim 64 or 128.
void run_flash_fwd_hopper_dense(const FlashKernelArgs& args, int head_dim, cudaStream_t stream);

}  // namespace lf::gpu::flash
