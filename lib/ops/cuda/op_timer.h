#pragma once
// GPU time per op class: a pair of CUDA events around each op while profiling is on, summed when asked. Events
// come from a pool of at most a few thousand pairs, summed and reused as it fills, so a profiled run of any length
// holds a bounded amount of host memory.
#include <cstddef>
#include <map>
#include <string>

namespace lf::gpu {

void op_timer_enable(bool enabled);
bool op_timer_enabled();
// Records an op of `op_class` between begin and end on `stream` (a cudaStream_t; null = the legacy default).
int op_timer_begin(void* stream = nullptr);  // returns a slot, or -1 when disabled
void op_timer_end(int slot, const char* op_class, void* stream = nullptr);
std::map<std::string, double> op_timer_report_ms();  // synchronises; totals since the last enable
size_t op_timer_pool_slots();  // event pairs held (bounded however many ops were timed)

// Times the enclosing scope as one op of `op_class` on `stream` (inert while profiling is off). The ops pass
// OpClassScope::current(default) so a caller's scope can re-label them (ops/ops.h).
class ScopedOpTimer {
 public:
  explicit ScopedOpTimer(const char* op_class, void* stream = nullptr)
      : op_class_(op_class), stream_(stream), slot_(op_timer_begin(stream)) {}
  ~ScopedOpTimer() { op_timer_end(slot_, op_class_, stream_); }
  ScopedOpTimer(const ScopedOpTimer&) = delete;
  ScopedOpTimer& operator=(const ScopedOpTimer&) = delete;

 private:
  const char* op_class_;
  void* stream_;
  int slot_;
};

}  // namespace lf::gpu
