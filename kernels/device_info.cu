// Device queries used by `--device auto`, the GPU tests and the benchmarks.
#include "kernels/cuda_check.h"
#include "kernels/device_info.h"

namespace lf::gpu {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

std::string device_name(int device) {
  cudaDeviceProp props{};
  LF_CUDA_CHECK(cudaGetDeviceProperties(&props, device), "device {}", device);
  return fmt::format("{} (sm_{}{}, {} SMs, {:.0f} GiB)", props.name, props.major, props.minor,
                     props.multiProcessorCount, double(props.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace lf::gpu
