#include <cuda_runtime.h>

#include "kernels/cuda_check.h"
#include "ops/cuda/side_stream.h"

namespace lf::gpu {

SideStream::~SideStream() {
  // Destructors never throw; a failing teardown (a dead context at exit) leaves nothing to recover.
  if (forked_) cudaEventDestroy(static_cast<cudaEvent_t>(forked_));
  if (done_) cudaEventDestroy(static_cast<cudaEvent_t>(done_));
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void* SideStream::stream() {
  if (stream_ == nullptr) {
    // Non-blocking: it must not serialise with the legacy default stream. Highest priority: its work is a few
    // small grids that should take SMs ahead of the wide grid they overlap (a copy or a GEMM).
    int least = 0, greatest = 0;
    LF_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest), "side stream priorities");
    cudaStream_t stream = nullptr;
    LF_CUDA_CHECK(cudaStreamCreateWithPriority(&stream, cudaStreamNonBlocking, greatest), "side stream");
    stream_ = stream;
    cudaEvent_t forked = nullptr, done = nullptr;
    LF_CUDA_CHECK(cudaEventCreateWithFlags(&forked, cudaEventDisableTiming), "side stream event");
    LF_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "side stream event");
    forked_ = forked;
    done_ = done;
  }
  return stream_;
}

void SideStream::fork() {
  cudaStream_t side = static_cast<cudaStream_t>(stream());
  LF_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(forked_), nullptr), "side stream fork");
  LF_CUDA_CHECK(cudaStreamWaitEvent(side, static_cast<cudaEvent_t>(forked_), 0), "side stream fork");
}

void SideStream::join() {
  cudaStream_t side = static_cast<cudaStream_t>(stream());
  LF_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(done_), side), "side stream join");
  LF_CUDA_CHECK(cudaStreamWaitEvent(nullptr, static_cast<cudaEvent_t>(done_), 0), "side stream join");
}

}  // namespace lf::gpu
