#pragma once
// Host helpers shared by the kernel labs (kernels/**/lab_*.cu): a CPU parallel loop for the references, and a
// bounded wait so that a hung kernel ends the lab instead of the GPU session.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda_check.h"

namespace lf::lab {

inline void parallel_for(int count, const std::function<void(int)>& body) {
  const int workers = int(std::max(1u, std::min(64u, std::thread::hardware_concurrency())));
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      for (int i = w; i < count; i += workers) body(i);
    });
  for (auto& t : threads) t.join();
}

// A hung kernel (a lost mbarrier arrival, a named-barrier mismatch) must not eat the GPU session: wait at most
// `seconds`, then say what hung and leave.
inline void synchronize_or_die(const std::string& what, double seconds = 20.0) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const cudaError_t status = cudaStreamQuery(nullptr);
    if (status == cudaSuccess) return;
    if (status != cudaErrorNotReady) LF_CUDA_CHECK(status, "{}", what);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds) {
      std::printf("HANG: %s did not finish within %.0f s; exiting\n", what.c_str(), seconds);
      std::fflush(stdout);
      std::_Exit(3);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace lf::lab
