#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "ops/cuda/op_timer.h"

namespace lf::gpu {

namespace {
struct TimedOp {
  cudaEvent_t begin, end;
  const char* op_class;
};
bool g_enabled = false;
std::vector<TimedOp> g_pool;
size_t g_used = 0;
int g_open = 0;                               // ops begun and not yet ended (timers nest)
std::map<std::string, double> g_folded;      // totals of the slots already summed and recycled
// A long profiled run (minutes of video) would otherwise hold one event pair per op ever run: at this many slots,
// with no op open, the recorded ones are summed into g_folded and the pool is reused (one device synchronisation
// per fold, every few chunks, while profiling only).
constexpr size_t kFoldAt = 4096;

void fold_recorded() {
  LF_CUDA_CHECK(cudaDeviceSynchronize(), "op timer fold");
  for (size_t i = 0; i < g_used; ++i) {
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, g_pool[i].begin, g_pool[i].end), "op timer elapsed");
    g_folded[g_pool[i].op_class] += ms;
  }
  g_used = 0;
}
}  // namespace

void op_timer_enable(bool enabled) {
  g_enabled = enabled;
  if (enabled) {
    g_used = 0;
    g_open = 0;
    g_folded.clear();
  }
}

bool op_timer_enabled() { return g_enabled; }

int op_timer_begin(void* stream) {
  if (!g_enabled) return -1;
  if (g_used == g_pool.size()) {
    TimedOp op{};
    LF_CUDA_CHECK(cudaEventCreate(&op.begin), "op timer event");
    LF_CUDA_CHECK(cudaEventCreate(&op.end), "op timer event");
    g_pool.push_back(op);
  }
  LF_CUDA_CHECK(cudaEventRecord(g_pool[g_used].begin, static_cast<cudaStream_t>(stream)), "op timer record");
  ++g_open;
  return int(g_used++);
}

void op_timer_end(int slot, const char* op_class, void* stream) {
  if (slot < 0) return;
  g_pool[size_t(slot)].op_class = op_class;
  LF_CUDA_CHECK(cudaEventRecord(g_pool[size_t(slot)].end, static_cast<cudaStream_t>(stream)), "op timer record");
  if (--g_open == 0 && g_used >= kFoldAt) fold_recorded();
}

std::map<std::string, double> op_timer_report_ms() {
  std::map<std::string, double> totals = g_folded;
  // Nothing recorded (a CPU run in a CUDA build, possibly on a machine without a driver): no CUDA call at all.
  if (g_used == 0) return totals;
  LF_CUDA_CHECK(cudaDeviceSynchronize(), "op timer report");
  for (size_t i = 0; i < g_used; ++i) {
    float ms = 0;
    LF_CUDA_CHECK(cudaEventElapsedTime(&ms, g_pool[i].begin, g_pool[i].end), "op timer elapsed");
    totals[g_pool[i].op_class] += ms;
  }
  return totals;
}

size_t op_timer_pool_slots() { return g_pool.size(); }

}  // namespace lf::gpu
