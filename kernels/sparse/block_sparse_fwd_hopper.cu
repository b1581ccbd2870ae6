// Instantiations of the Hopper (TMA + wgmma) flash attention kernel with the frame-aligned block-sparse schedule.
#include "attention/flash_fwd_hopper.cuh"
#include "sparse/block_sparse_launch.cuh"

namespace lf::gpu::flash {

void run_block_sparse_hopper(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim,
                             cudaStream_t stream) {
  if (head_dim == 128) {
    using Traits = HopperDefaultTraits<128>;
    static_assert(Traits::kBlockM == 128 && Traits::kBlockN == 128, "the selector's rules assume 128 x 128 tiles");
    launch_flash_fwd_hopper<Traits>(args, frame_aligned_schedule<Traits::kBlockN>(mask), stream);
  } else if (head_dim == 64) {
    using Traits = HopperDefaultTraits<64>;
    static_assert(Traits::kBlockM == 128 && Traits::kBlockN == 128, "the selector's rules assume 128 x 128 tiles");
    launch_flash_fwd_hopper<Traits>(args, frame_aligned_schedule<Traits::kBlockN>(mask), stream);
  } else {
    fail("block-sparse attention (hopper): head_dim {} is not instantiated (64 or 128)", head_dim);
  }
}

}  // namespace lf::gpu::flash
