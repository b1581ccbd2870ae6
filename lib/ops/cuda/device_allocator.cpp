#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <unordered_map>

#include "core/tensor.h"
#include "kernels/cuda_check.h"
#include "ops/cuda/device_allocator.h"

namespace lf::gpu {

namespace {

// Sizes round up so that nearby requests share blocks: 512 B granules below 1 MiB, 2 MiB granules above.
size_t rounded_size(size_t bytes) {
  constexpr size_t kSmallGranule = 512, kLargeGranule = 2u << 20, kLargeThreshold = 1u << 20;
  const size_t granule = bytes < kLargeThreshold ? kSmallGranule : kLargeGranule;
  return (bytes + granule - 1) / granule * granule;
}

class CachingAllocator final : public DeviceAllocator {
 public:
  void* allocate(size_t bytes) override {
    const size_t size = rounded_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void* pointer = nullptr;
    auto cached = free_.find(size);
    if (cached != free_.end()) {
      pointer = cached->second;
      free_.erase(cached);
    } else {
      cudaError_t status = cudaMalloc(&pointer, size);
      if (status == cudaErrorMemoryAllocation) {
        // Give the cache back to the driver and try once more before reporting.
        cudaGetLastError();
        release_cached_locked();
        status = cudaMalloc(&pointer, size);
      }
      if (status != cudaSuccess) {
        cudaGetLastError();
        size_t free_bytes = 0, total_bytes = 0;
        cudaMemGetInfo(&free_bytes, &total_bytes);
        cuda_fail(status, "cudaMalloc",
                  fmt::format("{:.2f} GiB requested, {:.2f} GiB in use by lightforce, {:.2f} of {:.2f} GiB free",
                              double(size) / (1u << 30), double(stats_.in_use_bytes) / (1u << 30),
                              double(free_bytes) / (1u << 30), double(total_bytes) / (1u << 30)));
      }
      ++stats_.cuda_malloc_calls;
      stats_.reserved_bytes += size;
    }
    sizes_[pointer] = size;
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    return pointer;
  }

  void release(void* pointer) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = sizes_.find(pointer);
    if (found == sizes_.end()) return;
    stats_.in_use_bytes -= found->second;
    free_.emplace(found->second, pointer);
    sizes_.erase(found);
  }

  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes == 0) return;
    // Unified addressing: the runtime infers the direction. Synchronous, so host reads see the data.
    LF_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "copy of {} bytes", bytes);
  }

  void zero(void* pointer, size_t bytes) override {
    LF_CUDA_CHECK(cudaMemset(pointer, 0, bytes), "zeroing {} bytes", bytes);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

 private:
  void release_cached_locked() {
    for (auto& [size, pointer] : free_) {
      cudaFree(pointer);
      stats_.reserved_bytes -= size;
    }
    free_.clear();
  }

  std::mutex mutex_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> sizes_;
  AllocatorStats stats_;
};

CachingAllocator& allocator() {
  // Never destroyed: tensors may be released during static destruction after the CUDA context is gone.
  static CachingAllocator* instance = new CachingAllocator();
  return *instance;
}

}  // namespace

namespace {
int g_selected_device = 0;
}

void initialize_device_memory(int device_index) {
  if (device_allocator() == &allocator()) {
    LF_CHECK(device_index == g_selected_device, "cuda:{} asked for, but this process already runs on cuda:{}",
             device_index, g_selected_device);
    return;
  }
  int count = 0;
  LF_CUDA_CHECK(cudaGetDeviceCount(&count), "looking for a GPU");
  LF_CHECK(count > 0, "no CUDA device found");
  LF_CHECK(device_index >= 0 && device_index < count, "cuda:{} does not exist: this machine has {} GPU(s), cuda:0 .. "
           "cuda:{}", device_index, count, count - 1);
  LF_CUDA_CHECK(cudaSetDevice(device_index), "selecting device {}", device_index);
  g_selected_device = device_index;
  register_device_allocator(&allocator());
}

int selected_device() { return g_selected_device; }

AllocatorStats allocator_stats() { return allocator().stats(); }
void reset_peak_memory() { allocator().reset_peak(); }

}  // namespace lf::gpu
