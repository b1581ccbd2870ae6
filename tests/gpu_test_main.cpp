// Main of the `gpu`-labelled tests: exit 77 (reported by ctest as skipped) without CUDA or without a GPU, so CI on
// CPU-only machines stays green and honest about what it did not run.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#if LF_HAVE_CUDA
#include <cuda_runtime.h>
#endif

int main(int argc, char** argv) {
#if LF_HAVE_CUDA
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: skipping GPU tests\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
#else
  (void)argc;
  (void)argv;
  std::printf("built without CUDA: skipping GPU tests\n");
  return 77;
#endif
}
