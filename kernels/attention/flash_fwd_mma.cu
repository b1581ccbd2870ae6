// Instantiations of the mma.sync flash attention kernel used by the public API.
#include "kernels/attention/flash_fwd_mma.cuh"

namespace lf::gpu::flash {

void run_flash_fwd_mma_dense(const FlashKernelArgs& args, int head_dim, cudaStream_t stream) {
  if (head_dim == 128) {
    using Traits = MmaSyncDefaultTraits<128>;
    launch_flash_fwd_mma<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{args.lk}, stream);
  } else if (head_dim == 64) {
    using Traits = MmaSyncDefaultTraits<64>;
    launch_flash_fwd_mma<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{args.lk}, stream);
  } else {
    fail("flash attention (mma.sync): head_dim {} is not instantiated (64 or 128)", head_dim);
  }
}

}  // namespace lf::gpu::flash
