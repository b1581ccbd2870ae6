#include "ops/cuda/phase_timer.h"

#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda_check.h"

namespace lf::gpu {

PhaseTimer::~PhaseTimer() {
  for (void* event : events_)
    if (event != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void PhaseTimer::mark(int index, void* stream) {
  LF_CHECK(index >= 0 && index < kMarks, "PhaseTimer: mark {} outside 0..{}", index, kMarks - 1);
  if (events_[index] == nullptr) {
    cudaEvent_t event = nullptr;
    LF_CUDA_CHECK(cudaEventCreate(&event), "phase timer event");
    events_[index] = event;
  }
  LF_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[index]), static_cast<cudaStream_t>(stream)),
                "phase timer record");
}

double PhaseTimer::elapsed_ms(int from, int to) {
  LF_CHECK(from >= 0 && from < kMarks && to >= 0 && to < kMarks && events_[from] && events_[to],
           "PhaseTimer: marks {} and {} were not recorded", from, to);
  LF_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(events_[to])), "phase timer wait");
  float ms = 0;
  LF_CUDA_CHECK(
      cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(events_[from]), static_cast<cudaEvent_t>(events_[to])),
      "phase timer elapsed");
  return double(ms);
}

}  // namespace lf::gpu
