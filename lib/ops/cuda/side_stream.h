#pragma once
// A second CUDA stream for work that may run beside the legacy default stream's (everything else in the engine
// is issued there). fork() orders the side stream after all work issued so far on the default stream; join()
// orders all later default-stream work after everything issued so far on the side stream. Between the two, the
// caller promises that the two streams touch disjoint memory.
namespace lf::gpu {

class SideStream {
 public:
  SideStream() = default;
  SideStream(const SideStream&) = delete;
  SideStream& operator=(const SideStream&) = delete;
  ~SideStream();

  void* stream();  // a cudaStream_t, created on first use
  void fork();
  void join();

 private:
  void* stream_ = nullptr;
  void* forked_ = nullptr;  // events (cudaEvent_t, timing off)
  void* done_ = nullptr;
};

}  // namespace lf::gpu
