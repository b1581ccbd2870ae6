// Instantiations of the Hopper (TMA + wgmma) flash attention kernel with the frame-aligned block-sparse schedule,
// launched persistent and with packed frame tails (block_sparse_hopper.cuh).
#include "kernels/sparse/block_sparse_hopper.cuh"

namespace lf::gpu::flash {

int packed_tail_rows(const FrameAlignedMask& mask, int tile_keys) {
  if (mask.key_block != tile_keys) return 0;
  const int tail = frame_blocks::frame_tail_length(mask.tokens_per_frame, mask.key_block);
  return tail % 8 == 0 && tail <= tile_keys / 2 ? tail : 0;
}

void run_block_sparse_hopper(const FlashKernelArgs& args, const FrameAlignedMask& mask, int head_dim,
                             cudaStream_t stream) {
  if (head_dim == 128)
    launch_block_sparse_hopper<HopperDefaultTraits<128>>(args, mask, stream);
  else if (head_dim == 64)
    launch_block_sparse_hopper<HopperDefaultTraits<64>>(args, mask, stream);
  else
    fail("block-sparse attention (hopper): head_dim {} is not instantiated (64 or 128)", head_dim);
}

}  // namespace lf::gpu::flash
