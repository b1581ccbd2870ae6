// Instantiations of the Hopper (TMA + wgmma) flash attention kernel with the frame-aligned block-sparse schedule,
// launched persistent and with packed frame tails (block_sparse_launch.cuh).
#include "kernels/attention/flash_fwd_hopper.cuh"
#include "kernels/sparse/block_sparse_launch.cuh"
#include "kernels/speed_switches.h"

namespace lf::gpu::flash {

BlockSparseHopperExperiments& block_sparse_hopper_experiments() {
  static BlockSparseHopperExperiments experiments;
  return experiments;
}

int packed_tail_rows(const FrameAlignedMask& mask, int tile_keys) {
  if (mask.key_block != tile_keys) return 0;
  const int tail = frame_blocks::frame_tail_length(mask.tokens_per_frame, mask.key_block);
  return tail % 8 == 0 && tail <= tile_keys / 2 ? tail : 0;
}

namespace {

template <class Traits>
void launch_sparse(const FlashKernelArgs& args, const FrameAlignedMask& mask, cudaStream_t stream) {
  static_assert(Traits::kBlockM == 128 && Traits::kBlockN == 128, "the selector's rules assume 128 x 128 tiles");
  using Schedule = FrameAlignedSparseKeyBlocks<Traits::kBlockN>;
  const SpeedSwitches& switches = speed_switches();
  const BlockSparseHopperExperiments& experiments = block_sparse_hopper_experiments();
  Schedule schedule = frame_aligned_schedule<Traits::kBlockN>(mask);
  HopperLaunch launch;
  if (switches.block_sparse_persistent) launch.ctas = hopper_persistent_ctas();
  if (switches.block_sparse_pack_tails) {
    launch.piece_rows = packed_tail_rows(mask, Traits::kBlockN);
    schedule.piece_rows = launch.piece_rows;
    schedule.pieces_per_tile = launch.piece_rows > 0 ? Traits::kBlockN / launch.piece_rows : 1;
    if (schedule.pieces_per_tile > Schedule::kMaxPiecesPerTile) schedule.pieces_per_tile = Schedule::kMaxPiecesPerTile;
  }
  FlashKernelArgs traced = args;
  traced.trace = experiments.trace;
  traced.early_handover = experiments.early_handover;
  launch_flash_fwd_hopper<Traits>(traced, schedule, stream, launch);
}

}  // namespace

void run_block_sparse_hopper(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim,
                             cudaStream_t stream) {
  // double_q (experiment): two Q tiles, which at head_dim 128 leaves room for 2 K/V stages only.
  using DoubleQ128 = HopperTileTraits<128, 128, 2, true, false, 2>;
  using DoubleQ64 = HopperTileTraits<64, 128, 3, true, false, 2>;
  const bool double_q = block_sparse_hopper_experiments().double_q;
  if (head_dim == 128)
    double_q ? launch_sparse<DoubleQ128>(args, mask, stream) : launch_sparse<HopperDefaultTraits<128>>(args, mask, stream);
  else if (head_dim == 64)
    double_q ? launch_sparse<DoubleQ64>(args, mask, stream) : launch_sparse<HopperDefaultTraits<64>>(args, mask, stream);
  else
    fail("block-sparse attention (hopper): head_dim {} is not instantiated (64 or 128)", head_dim);
}

}  // namespace lf::gpu::flash
