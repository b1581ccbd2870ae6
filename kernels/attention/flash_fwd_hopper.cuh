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

#include <atomic>

#include "kernels/attention/flash_block_schedule.cuh"
#include "kernels/attention/flash_hopper_primitives.cuh"
#include "kernels/attention/flash_softmax.cuh"
#include "kernels/attention/flash_tile_traits.cuh"
#include "kernels/cuda_check.h"

namespace lf::gpu::flash {

// Bytes of static shared memory the stub (non-sm_90a) build of the kernel declares; the real kernel has none.
// The host reads it back with cudaFuncGetAttributes to learn, without a launch, which build is loaded.
constexpr int kHopperStubMarkerBytes = 16;

// Work items and persistence. A work item is one (query block, head), item = head * query_blocks + q_block. A CTA
// walks items blockIdx.x, blockIdx.x + gridDim.x, ...; launched with one CTA per item (the dense default) the loop
// runs once. Launched persistent (gridDim.x = one CTA per SM), the producer loads the next item's Q as soon as both
// consumers have issued their last S = Q K^T of the current one (q_empty), and its K/V ring simply carries on, so
// the next item's loads overlap the current item's last P V, softmax finish and output store. That fixed prologue
// and epilogue is what a short sparse row (4-30 tiles) cannot amortise in a CTA of its own.
//
// The producer tells the consumers what it loaded through shared memory, written before the mbarrier arrive that
// publishes the data (arrive has release, try_wait acquire semantics): the tile count of each item (double
// buffered by item parity) and the valid keys of each stage. So the consumers never read the schedule (a CSR lookup
// of two dependent global loads used to sit on their critical path for the ragged-tile mask).
// Diagnostics (HopperLab::trace, lab_sparse --trace): clock64() stamps, one thread per role (consumer 0,
// consumer 1, producer), for the first kTraceItems work items of each CTA:
// trace[((cta * kTraceItems + item slot) * kTraceRoles + role) * kTracePoints + point]. The points are the
// kTrace* constants. SM clocks are per SM, so only differences within a CTA mean anything.
constexpr int kTraceItems = 8, kTraceRoles = 3, kTracePoints = 8;
enum TracePoint : int {
  kTraceItemStart = 0,     // consumers: top of the item loop; producer: before waiting for q_empty
  kTraceQReady = 1,        // consumers: Q landed (q_full); producer: q_empty passed, Q load issued
  kTraceFirstK = 2,        // consumers: first K tile landed; producer: every K/V load of the item issued
  kTraceFirstSoftmax = 3,  // consumers: the first tile's S and softmax done
  kTraceLoopDone = 4,      // consumers: the loop over tiles 1.. done (before the last P V)
  kTraceLastPv = 5,        // consumers: the last P V done
  kTraceStored = 6,        // consumers: output rows stored
  kTraceKernelStart = 7,   // producer, slot 0: after the CTA's setup barrier
};
__device__ __forceinline__ void trace_stamp(long long* trace, int slot, int role, int point) {
  if (trace != nullptr && slot < kTraceItems)
    trace[((int64_t(blockIdx.x) * kTraceItems + slot) * kTraceRoles + role) * kTracePoints + point] = clock64();
}

// What only lab_sparse switches on inside the kernel: clock stamps (trace, null = off) and the early hand-over
// experiment (take_turn below). Production instantiates NoHopperLab, whose constant answers compile both away, so
// the kernel the engine runs carries neither; the lab instantiates its own struct with the same two members
// (kernels/sparse/lab_sparse_hopper.cuh).
struct NoHopperLab {
  __host__ __device__ constexpr long long* trace() const { return nullptr; }
  __host__ __device__ constexpr bool early_handover() const { return false; }
};

template <class Traits, class Schedule, class Lab = NoHopperLab>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    flash_fwd_hopper_kernel(const FlashKernelArgs args, const Schedule schedule, const Lab lab,
                            const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                            const __grid_constant__ CUtensorMap v_map, const __grid_constant__ CUtensorMap k_piece_map,
                            const __grid_constant__ CUtensorMap v_piece_map, const int piece_rows) {
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
  const uint32_t shared_base = shared_address_of(shared_raw);
  constexpr int kQBuffers = Traits::kQBuffers;
  const uint32_t q_base = (shared_base + 1023u) & ~1023u;  // swizzle atoms are 1024-aligned
  auto q_tile = [&](int buffer) { return q_base + uint32_t(buffer) * Traits::kQTileBytes; };
  const uint32_t k_ring = q_base + kQBuffers * Traits::kQTileBytes;
  const uint32_t v_ring = k_ring + kStages * Traits::kKVTileBytes;
  const uint32_t barriers = v_ring + kStages * Traits::kKVTileBytes;
  auto q_full = [&](int buffer) { return barriers + 8u * buffer; };
  auto q_empty = [&](int buffer) { return barriers + 8u * (kQBuffers + buffer); };
  constexpr int kQBarriers = 2 * kQBuffers;
  auto k_full = [&](int stage) { return barriers + 8u * (kQBarriers + stage); };
  auto v_full = [&](int stage) { return barriers + 8u * (kQBarriers + kStages + stage); };
  auto kv_empty = [&](int stage) { return barriers + 8u * (kQBarriers + 2 * kStages + stage); };
  volatile int* const stage_valid = reinterpret_cast<volatile int*>(shared_raw + (barriers - shared_base) +
                                                                    8 * (kQBarriers + 3 * kStages));
  volatile int* const item_tiles = stage_valid + kStages;  // [2], by item parity

  const int query_blocks = (args.lq + kBlockM - 1) / kBlockM;
  const int items = query_blocks * args.heads;
  const int warpgroup = threadIdx.x / 128;

  if (threadIdx.x == 0) {
    for (int buffer = 0; buffer < kQBuffers; ++buffer) {
      mbarrier_init(q_full(buffer), 1);
      mbarrier_init(q_empty(buffer), Traits::kConsumerWarpgroups * 4);  // one arrival per consumer warp
    }
    for (int stage = 0; stage < kStages; ++stage) {
      mbarrier_init(k_full(stage), 1);
      mbarrier_init(v_full(stage), 1);
      mbarrier_init(kv_empty(stage), Traits::kConsumerWarpgroups * 4);
    }
    mbarrier_init_fence();
  }
  if (piece_rows > 0) {
    // Packed tiles leave rows [pieces * piece_rows, kBlockN) unwritten; P is 0 there but P V still multiplies the
    // stale rows, so they must hold finite values: zero the ring once (TMA and wgmma only ever put real K/V there).
    const uint4 zero = make_uint4(0, 0, 0, 0);
    uint4* ring = reinterpret_cast<uint4*>(shared_raw + (k_ring - shared_base));
    for (int i = threadIdx.x; i < 2 * kStages * Traits::kKVTileBytes / 16; i += Traits::kThreads) ring[i] = zero;
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ---- producer: warp 0 (all lanes count a packed row's tiles, lane 0 issues) ----
    release_registers<Traits::kProducerRegisters>();
    if (threadIdx.x < 32) {
      const int lane = threadIdx.x;
      if (lane == 0) {
        tma_prefetch_descriptor(&q_map);
        tma_prefetch_descriptor(&k_map);
        tma_prefetch_descriptor(&v_map);
      }
      int loaded = 0;  // tiles put in the ring so far, over all items: the ring position carries across items
      int parity = 0;  // of the item count
      int slot = 0;    // items of this CTA so far (trace)
      if (lane == 0) trace_stamp(lab.trace(), 0, 2, kTraceKernelStart);
      for (int item = blockIdx.x; item < items; item += gridDim.x, parity ^= 1, ++slot) {
        const int q_block = item % query_blocks, head = item / query_blocks;
        int tiles;
        if constexpr (Schedule::kPacksPieces)
          tiles = schedule.tiles_in_row(head, q_block, lane);
        else
          tiles = schedule.count(head, q_block);
        if (lane == 0) {
          trace_stamp(lab.trace(), slot, 2, kTraceItemStart);
          // Both consumers issued their last Q K^T of the item that used this Q buffer before (the previous
          // item with one buffer, the one before it with two).
          const int buffer = slot % kQBuffers;
          mbarrier_wait(q_empty(buffer), ((slot / kQBuffers) & 1) ^ 1);
          trace_stamp(lab.trace(), slot, 2, kTraceQReady);
          item_tiles[parity] = tiles;  // its previous reader (item slot - 2) read it before releasing its Q
          mbarrier_arrive_expect_tx(q_full(buffer), Traits::kQTileBytes);
          for (int slab = 0; slab < kSlabs; ++slab)
            tma_load_3d(q_tile(buffer) + slab * Traits::kQSlabBytes, &q_map, q_full(buffer),
                        slab * Traits::kSlabCols, head, q_block * kBlockM);
          // One ring slot per tile: wait until its readers of the previous round are done, note its valid keys,
          // then load K and V (whole boxes, or packed pieces).
          auto claim = [&](int valid) {
            const int stage = loaded % kStages;
            mbarrier_wait(kv_empty(stage), ((loaded / kStages) & 1) ^ 1);
            stage_valid[stage] = valid;
            ++loaded;
            return stage;
          };
          auto load_block = [&](const KeyBlock& block) {
            const int stage = claim(block.valid_keys);
            const uint32_t k_tile = k_ring + stage * Traits::kKVTileBytes;
            const uint32_t v_tile = v_ring + stage * Traits::kKVTileBytes;
            mbarrier_arrive_expect_tx(k_full(stage), Traits::kKVTileBytes);
            for (int slab = 0; slab < kSlabs; ++slab)
              tma_load_3d(k_tile + slab * Traits::kKVSlabBytes, &k_map, k_full(stage), slab * Traits::kSlabCols,
                          head, block.first_key);
            mbarrier_arrive_expect_tx(v_full(stage), Traits::kKVTileBytes);
            for (int slab = 0; slab < kSlabs; ++slab)
              tma_load_3d(v_tile + slab * Traits::kKVSlabBytes, &v_map, v_full(stage), slab * Traits::kSlabCols,
                          head, block.first_key);
          };
          auto load_pieces = [&](const int* first_keys, int pieces) {
            const int stage = claim(pieces * piece_rows);
            const uint32_t k_tile = k_ring + stage * Traits::kKVTileBytes;
            const uint32_t v_tile = v_ring + stage * Traits::kKVTileBytes;
            const uint32_t bytes = uint32_t(pieces * piece_rows * 128 * kSlabs);
            mbarrier_arrive_expect_tx(k_full(stage), bytes);
            for (int j = 0; j < pieces; ++j)
              for (int slab = 0; slab < kSlabs; ++slab)
                tma_load_3d(k_tile + slab * Traits::kKVSlabBytes + j * piece_rows * 128, &k_piece_map, k_full(stage),
                            slab * Traits::kSlabCols, head, first_keys[j]);
            mbarrier_arrive_expect_tx(v_full(stage), bytes);
            for (int j = 0; j < pieces; ++j)
              for (int slab = 0; slab < kSlabs; ++slab)
                tma_load_3d(v_tile + slab * Traits::kKVSlabBytes + j * piece_rows * 128, &v_piece_map, v_full(stage),
                            slab * Traits::kSlabCols, head, first_keys[j]);
          };
          if constexpr (Schedule::kPacksPieces) {
            struct {
              decltype(load_block)& whole;
              decltype(load_pieces)& packed;
              __device__ __forceinline__ void block(const KeyBlock& b) { whole(b); }
              __device__ __forceinline__ void pieces(const int* first_keys, int n) { packed(first_keys, n); }
            } load{load_block, load_pieces};
            schedule.for_each_tile(head, q_block, load);
          } else {
            for (int i = 0; i < tiles; ++i) load_block(schedule.block(head, q_block, i));
          }
          trace_stamp(lab.trace(), slot, 2, kTraceFirstK);
        }
        __syncwarp();
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
  // its barrier. Per item, consumer 1 hands consumer 0 the first turn and skips its own last hand-over, so every
  // barrier sees exactly as many arrivals as waits and the next item starts from the same state.
  auto take_turn = [&]() {
    if constexpr (Traits::kPingPong) named_barrier_sync<kConsumerThreads>(kTurnBarrier + consumer);
  };
  auto pass_turn = [&](bool last_turn) {
    if constexpr (Traits::kPingPong)
      if (!(consumer == 1 && last_turn)) named_barrier_arrive<kConsumerThreads>(kTurnBarrier + (1 - consumer));
  };
  // early_handover: consumer 1 also passes its last turn of an item, so consumer 0 may start the next item's
  // S = Q K^T while consumer 1 still finishes (last P V, softmax finish, store). The hand-over for the first item
  // is made before the loop, and the one left after the last item is taken by consumer 0 after it.
  const bool early_handover = Traits::kPingPong && lab.early_handover();
  if constexpr (Traits::kPingPong)
    if (early_handover && consumer == 1) named_barrier_arrive<kConsumerThreads>(kTurnBarrier + 0);

  // K-major descriptors step 16 columns (32 bytes) inside a 128-byte swizzled row, and a slab at a time.
  uint32_t q_rows = q_tile(0) + consumer * Traits::kRowsPerConsumer * 128;  // this item's Q buffer, per item
  float s[kKeyTiles][4];
  float o[kOutTiles][4];
  uint32_t p[kKeyTiles / 2][4];
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
  int q_buffer = 0;
  auto release_q = [&]() {
    if (warp_leader) mbarrier_arrive(q_empty(q_buffer));
  };
  auto mask_ragged = [&](int stage) {
    const int valid = stage_valid[stage];
    if (valid < kBlockN) mask_columns(s, valid, lane);
  };

  int consumed = 0;  // ring position, in step with the producer's `loaded`
  int parity = 0;
  int slot = 0;  // items of this CTA so far (trace)
  long long* const trace = threadIdx.x % 128 == 0 ? lab.trace() : nullptr;  // one stamping thread per consumer
  for (int item = blockIdx.x; item < items; item += gridDim.x, parity ^= 1, ++slot) {
    const int q_block = item % query_blocks, head = item / query_blocks;
    trace_stamp(trace, slot, consumer, kTraceItemStart);
#pragma unroll
    for (int j = 0; j < kKeyTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int j = 0; j < kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    OnlineSoftmax<kKeyTiles> softmax;
    softmax.init();

    q_buffer = slot % kQBuffers;
    q_rows = q_tile(q_buffer) + consumer * Traits::kRowsPerConsumer * 128;
    mbarrier_wait(q_full(q_buffer), (slot / kQBuffers) & 1);
    trace_stamp(trace, slot, consumer, kTraceQReady);
    const int num_blocks = item_tiles[parity];
    if (num_blocks == 0) {
      release_q();
    } else {
      if constexpr (Traits::kPingPong)
        if (consumer == 1 && !early_handover) named_barrier_arrive<kConsumerThreads>(kTurnBarrier + 0);
      auto stage_of = [&](int i) { return (consumed + i) % kStages; };
      auto phase_of = [&](int i) { return ((consumed + i) / kStages) & 1; };

      // Block 0: S only (there is no P yet).
      mbarrier_wait(k_full(stage_of(0)), phase_of(0));
      trace_stamp(trace, slot, consumer, kTraceFirstK);
      take_turn();
      wgmma_fence();
      issue_qk(stage_of(0));
      wgmma_commit();
      pass_turn(false);
      wgmma_wait<0>();
      pin_registers(s);
      if (num_blocks == 1) release_q();
      mask_ragged(stage_of(0));
      float rescale[2];
      softmax.update(s, args.scale_log2, rescale);
      probabilities_to_a_fragments(s, p);
      trace_stamp(trace, slot, consumer, kTraceFirstSoftmax);

      for (int i = 1; i < num_blocks; ++i) {
        const int stage = stage_of(i);
        const int previous = stage_of(i - 1);
        mbarrier_wait(k_full(stage), phase_of(i));
        mbarrier_wait(v_full(previous), phase_of(i - 1));
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
        if (i == num_blocks - 1) release_q();  // the last read of Q is done: the next item's Q may land
        mask_ragged(stage);
        softmax.update(s, args.scale_log2, rescale);
        wgmma_wait<0>();
        pin_registers(o);
        release_stage(previous);
        scale_rows(o, rescale);
        probabilities_to_a_fragments(s, p);
      }

      trace_stamp(trace, slot, consumer, kTraceLoopDone);
      const int last = stage_of(num_blocks - 1);
      mbarrier_wait(v_full(last), phase_of(num_blocks - 1));
      take_turn();
      pin_registers(o);
      pin_registers(p);
      wgmma_fence();
      issue_pv(last);
      wgmma_commit();
      pass_turn(!early_handover);
      wgmma_wait<0>();
      pin_registers(o);
      release_stage(last);
      consumed += num_blocks;
      trace_stamp(trace, slot, consumer, kTraceLastPv);
    }

    float inv_sum[2];
    softmax.finish(inv_sum);
    const int first_row = q_block * kBlockM + consumer * Traits::kRowsPerConsumer;
    store_output_rows(o, inv_sum, args.out + int64_t(first_row) * args.out_row_stride + head * kHeadDim,
                      args.out_row_stride, warp_in_group * 16, args.lq - first_row, lane);
    trace_stamp(trace, slot, consumer, kTraceStored);
  }
  if (early_handover && consumer == 0) take_turn();
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

// Launch options of the Hopper kernel. ctas 0 = one CTA per (query block, head); otherwise a persistent grid of
// min(ctas, items) CTAs. piece_rows > 0 enables packed tiles of that many rows per piece (the schedule decides which
// tiles are packed; FrameAlignedSparseKeyBlocks packs frame tails).
struct HopperLaunch {
  int ctas = 0;
  int piece_rows = 0;
};

// One CTA per SM: the kernel takes 224 KB of shared memory.
int hopper_persistent_ctas();

template <class Traits, class Schedule, class Lab = NoHopperLab>
void launch_flash_fwd_hopper(const FlashKernelArgs& args, const Schedule& schedule, cudaStream_t stream,
                             HopperLaunch launch = {}, const Lab& lab = Lab{}) {
  constexpr int kHeadDim = Traits::kHeadDim;
  const CUtensorMap q_map = make_head_tensor_map(args.q, args.lq, args.heads, kHeadDim, args.q_row_stride,
                                                 Traits::kBlockM);
  const CUtensorMap k_map = make_head_tensor_map(args.k, args.lk, args.heads, kHeadDim, args.k_row_stride,
                                                 Traits::kBlockN);
  const CUtensorMap v_map = make_head_tensor_map(args.v, args.lk, args.heads, kHeadDim, args.v_row_stride,
                                                 Traits::kBlockN);
  LF_CHECK(launch.piece_rows == 0 || (Schedule::kPacksPieces && launch.piece_rows % 8 == 0 &&
                                      launch.piece_rows <= Traits::kBlockN / 2),
           "flash attention (hopper): packed pieces of {} rows (multiples of 8 up to {}, packing schedules only)",
           launch.piece_rows, Traits::kBlockN / 2);
  const CUtensorMap k_piece_map =
      launch.piece_rows > 0
          ? make_head_tensor_map(args.k, args.lk, args.heads, kHeadDim, args.k_row_stride, launch.piece_rows)
          : k_map;
  const CUtensorMap v_piece_map =
      launch.piece_rows > 0
          ? make_head_tensor_map(args.v, args.lk, args.heads, kHeadDim, args.v_row_stride, launch.piece_rows)
          : v_map;
  auto kernel = flash_fwd_hopper_kernel<Traits, Schedule, Lab>;
  // The attribute is per device and per kernel and never changes: set once, not on every call (host launch work).
  static std::atomic<uint64_t> configured_devices{0};
  int device = 0;
  LF_CUDA_CHECK(cudaGetDevice(&device), "flash attention (hopper): current device");
  const uint64_t device_bit = device < 64 ? uint64_t(1) << device : 0;
  if ((configured_devices.load(std::memory_order_relaxed) & device_bit) == 0 || device_bit == 0) {
    LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Traits::kSmemBytes),
                  "flash attention (hopper) shared memory {} bytes", Traits::kSmemBytes);
    configured_devices.fetch_or(device_bit, std::memory_order_relaxed);
  }
  const int items = ((args.lq + Traits::kBlockM - 1) / Traits::kBlockM) * args.heads;
  const int ctas = launch.ctas > 0 ? (launch.ctas < items ? launch.ctas : items) : items;
  kernel<<<ctas, Traits::kThreads, Traits::kSmemBytes, stream>>>(args, schedule, lab, q_map, k_map, v_map,
                                                                  k_piece_map, v_piece_map, launch.piece_rows);
  LF_CUDA_LAUNCH_CHECK("flash attention (hopper) lq {} lk {} heads {} head_dim {} ctas {}", args.lq, args.lk,
                       args.heads, kHeadDim, ctas);
}

// tuned: whether dense attention runs persistent (HopperLaunch::ctas = SMs). Dense rows are long (37-256 tiles),
// so the overlap of one item's epilogue with the next one's prologue matters less than for sparse rows; the lab
// (lab_sparse's dense rows, both ways) decides. hopper_dense_persistent() is the knob the labs flip.
constexpr bool kHopperDensePersistent = false;
bool& hopper_dense_persistent();

// Dense attention with the default tiles (flash_fwd_hopper.cu); head_dim 64 or 128.
void run_flash_fwd_hopper_dense(const FlashKernelArgs& args, int head_dim, cudaStream_t stream);

}  // namespace lf::gpu::flash
