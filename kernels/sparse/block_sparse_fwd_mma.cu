// Instantiations of the mma.sync flash attention kernel with the frame-aligned block-sparse schedule.
#include "kernels/attention/flash_fwd_mma.cuh"
#include "kernels/sparse/block_sparse_launch.cuh"

namespace lf::gpu::flash {

namespace {

template <class Traits>
void launch_with_mask(const FlashKernelArgs& args, const FrameAlignedMask& mask, cudaStream_t stream) {
  static_assert(Traits::kBlockN == 64, "the selector's key-block rules assume the 64-key mma.sync tile");
  launch_flash_fwd_mma<Traits>(args, frame_aligned_schedule<Traits::kBlockN>(mask), stream);
}

}  // namespace

void run_block_sparse_mma(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim, int query_block,
                          cudaStream_t stream) {
  static_assert(MmaSyncDefaultTraits<128>::kBlockM == 128 && MmaSyncQueryBlock64Traits<128>::kBlockM == 64 &&
                    MmaSyncDefaultTraits<64>::kBlockM == 128 && MmaSyncQueryBlock64Traits<64>::kBlockM == 64,
                "query tiles must equal the mask's query blocks");
  if (query_block == 128 && head_dim == 128)
    launch_with_mask<MmaSyncDefaultTraits<128>>(args, mask, stream);
  else if (query_block == 128 && head_dim == 64)
    launch_with_mask<MmaSyncDefaultTraits<64>>(args, mask, stream);
  else if (query_block == 64 && head_dim == 128)
    launch_with_mask<MmaSyncQueryBlock64Traits<128>>(args, mask, stream);
  else if (query_block == 64 && head_dim == 64)
    launch_with_mask<MmaSyncQueryBlock64Traits<64>>(args, mask, stream);
  else
    fail("block-sparse attention (mma.sync): query_block {} / head_dim {} is not instantiated", query_block, head_dim);
}

}  // namespace lf::gpu::flash
