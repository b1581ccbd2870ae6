#pragma once
// A stream-ordered stopwatch (CUDA events): the engine's per-call phase times. Plain C++ header.
namespace lf::gpu {

// Times the phases of one attention call (planner, kernel) with CUDA events, so statistics need no host clock
// around asynchronous work. mark(i) records event i on `stream`; elapsed_ms(a, b) waits for event b. Each phase
// has its own pair of marks, so host work between phases (allocations) is not counted in either.
class PhaseTimer {
 public:
  static constexpr int kMarks = 4;
  PhaseTimer() = default;
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  ~PhaseTimer();
  void mark(int index, void* stream = nullptr);
  double elapsed_ms(int from, int to);

 private:
  void* events_[kMarks] = {};
};

}  // namespace lf::gpu
