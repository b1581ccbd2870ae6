#pragma once
// The Hopper block-sparse launch (persistent CTAs, packed frame tails) as a template over the tile traits and the
// lab's in-kernel switches: block_sparse_fwd_hopper.cu instantiates the production kernel (default traits, no lab
// switches), lab_sparse its experiments (two Q tiles, early hand-over, clock stamps), so the engine's binary
// carries no experiment.
#include "kernels/attention/flash_fwd_hopper.cuh"
#include "kernels/sparse/block_sparse_launch.cuh"
#include "kernels/speed_switches.h"

namespace lf::gpu::flash {

template <class Traits, class Lab = NoHopperLab>
void launch_block_sparse_hopper(const FlashKernelArgs& args, const FrameAlignedMask& mask, cudaStream_t stream,
                                const Lab& lab = Lab{}) {
  static_assert(Traits::kBlockM == 128 && Traits::kBlockN == 128, "the selector's rules assume 128 x 128 tiles");
  using Schedule = FrameAlignedSparseKeyBlocks<Traits::kBlockN>;
  const SpeedSwitches& switches = speed_switches();
  Schedule schedule = frame_aligned_schedule<Traits::kBlockN>(mask);
  HopperLaunch launch;
  if (switches.block_sparse_persistent) launch.ctas = hopper_persistent_ctas();
  if (switches.block_sparse_pack_tails) {
    launch.piece_rows = packed_tail_rows(mask, Traits::kBlockN);
    schedule.piece_rows = launch.piece_rows;
    schedule.pieces_per_tile = launch.piece_rows > 0 ? Traits::kBlockN / launch.piece_rows : 1;
    if (schedule.pieces_per_tile > Schedule::kMaxPiecesPerTile) schedule.pieces_per_tile = Schedule::kMaxPiecesPerTile;
  }
  launch_flash_fwd_hopper<Traits>(args, schedule, stream, launch, lab);
}

}  // namespace lf::gpu::flash
