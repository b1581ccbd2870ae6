// Host side of the Hopper kernel: TMA descriptors, the build probe, and the instantiations the public API uses.
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <array>
#include <atomic>

#include "kernels/attention/flash_fwd_hopper.cuh"

namespace lf::gpu::flash {

namespace {

// The driver's tensor-map encoder, fetched through the runtime so that no link against libcuda is needed.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encoder = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    LF_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000, cudaEnableDefault,
                                                   &found),
                  "looking up cuTensorMapEncodeTiled");
    LF_CHECK(found == cudaDriverEntryPointSuccess && function != nullptr,
             "flash attention (hopper): the driver has no cuTensorMapEncodeTiled (query result {})", int(found));
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  }();
  return encoder;
}

CUtensorMap encode_head_tensor_map(const void* base, int tokens, int heads, int head_dim, int64_t row_stride,
                                   int box_rows) {
  CUtensorMap map{};
  const cuuint64_t dims[3] = {cuuint64_t(head_dim), cuuint64_t(heads), cuuint64_t(tokens)};
  const cuuint64_t strides_bytes[2] = {cuuint64_t(head_dim) * 2, cuuint64_t(row_stride) * 2};
  const cuuint32_t box[3] = {64, 1, cuuint32_t(box_rows)};  // 64 bf16 = the 128-byte swizzle span
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult status = tensor_map_encoder()(
      &map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), dims, strides_bytes, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  LF_CHECK(status == CUDA_SUCCESS,
           "flash attention (hopper): cuTensorMapEncodeTiled failed ({}) for {} tokens x {} heads x {} dims, row "
           "stride {} elements, base {}",
           int(status), tokens, heads, head_dim, row_stride, base);
  return map;
}

}  // namespace

// Why a cache: the engine calls attention with the same few (pointer, shape) pairs over and over (a layer's KV
// cache, the shared q buffer), and a sparse call at density 0.1 and Lk 4680 runs for ~30 us of GPU time, so the
// host's launch work (five encodes among it) must stay well under that for the launches to queue ahead. A map depends only on its arguments (address and shape, not on
// what the memory holds), so a hit is exact even after the memory is freed and reused. Per thread, no locking;
// direct-mapped, a collision just re-encodes.
CUtensorMap make_head_tensor_map(const void* base, int tokens, int heads, int head_dim, int64_t row_stride,
                                 int box_rows) {
  struct Entry {
    const void* base = nullptr;
    int tokens = 0, heads = 0, head_dim = 0, box_rows = 0;
    int64_t row_stride = 0;
    CUtensorMap map{};
  };
  constexpr size_t kEntries = 256;
  thread_local std::array<Entry, kEntries> cache{};
  uint64_t h = reinterpret_cast<uintptr_t>(base) * 0x9e3779b97f4a7c15ull;
  h ^= (uint64_t(tokens) << 32 | uint32_t(box_rows)) * 0xbf58476d1ce4e5b9ull;
  h ^= (uint64_t(heads) << 32 | uint32_t(head_dim)) * 0x94d049bb133111ebull;
  h ^= uint64_t(row_stride) * 0xd6e8feb86659fd93ull;
  Entry& e = cache[(h ^ (h >> 29)) % kEntries];
  if (e.base != base || e.tokens != tokens || e.heads != heads || e.head_dim != head_dim || e.box_rows != box_rows ||
      e.row_stride != row_stride) {
    e.map = encode_head_tensor_map(base, tokens, heads, head_dim, row_stride, box_rows);  // throws before caching
    e.base = base;
    e.tokens = tokens;
    e.heads = heads;
    e.head_dim = head_dim;
    e.box_rows = box_rows;
    e.row_stride = row_stride;
  }
  return e.map;
}

bool hopper_kernels_built() {
  // Asked on every attention call (the variant selector); cudaFuncGetAttributes is not free, so the answer is kept
  // per device (the image loaded for a device does not change within a process).
  constexpr int kDevices = 64;
  static std::array<std::atomic<int8_t>, kDevices> known{};  // 0 unknown, 1 built, 2 stubs or no image
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  if (device >= 0 && device < kDevices && known[device].load(std::memory_order_relaxed) != 0)
    return known[device].load(std::memory_order_relaxed) == 1;
  using Traits = HopperDefaultTraits<128>;
  cudaFuncAttributes attributes{};
  bool built = false;
  if (cudaFuncGetAttributes(&attributes, flash_fwd_hopper_kernel<Traits, DenseKeyBlocks<Traits::kBlockN>>) !=
      cudaSuccess) {
    (void)cudaGetLastError();  // no loadable image for this device: not an error for the caller to trip over
  } else {
    built = attributes.sharedSizeBytes < size_t(kHopperStubMarkerBytes);
  }
  if (device >= 0 && device < kDevices) known[device].store(built ? 1 : 2, std::memory_order_relaxed);
  return built;
}

int hopper_persistent_ctas() {
  int device = 0;
  LF_CUDA_CHECK(cudaGetDevice(&device), "flash attention (hopper): current device");
  static int cached_device = -1, cached_sms = 0;
  if (device != cached_device) {
    LF_CUDA_CHECK(cudaDeviceGetAttribute(&cached_sms, cudaDevAttrMultiProcessorCount, device),
                  "flash attention (hopper): SM count of device {}", device);
    cached_device = device;
  }
  return cached_sms;
}

bool& hopper_dense_persistent() {
  static bool persistent = kHopperDensePersistent;
  return persistent;
}

void run_flash_fwd_hopper_dense(const FlashKernelArgs& args, int head_dim, cudaStream_t stream) {
  HopperLaunch launch;
  if (hopper_dense_persistent()) launch.ctas = hopper_persistent_ctas();
  if (head_dim == 128) {
    using Traits = HopperDefaultTraits<128>;
    launch_flash_fwd_hopper<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{args.lk}, stream, launch);
  } else if (head_dim == 64) {
    using Traits = HopperDefaultTraits<64>;
    launch_flash_fwd_hopper<Traits>(args, DenseKeyBlocks<Traits::kBlockN>{args.lk}, stream, launch);
  } else {
    fail("flash attention (hopper): head_dim {} is not instantiated (64 or 128)", head_dim);
  }
}

}  // namespace lf::gpu::flash
