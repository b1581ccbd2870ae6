// cuDNN for the decoders' convolutions (see conv_cudnn.h). cuDNN's legacy convolution API through function
// pointers resolved from libcudnn.so.9: the binary does not link it, so it starts where cuDNN is absent.
#include "kernels/conv/conv_cudnn.h"

#include <cudnn.h>
#include <dlfcn.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/speed_switches.h"

namespace lf::gpu {

namespace {

// The entry points used, resolved by name (the types come from the headers of the build machine's cuDNN 9).
struct CudnnApi {
  decltype(&cudnnGetVersion) get_version = nullptr;
  decltype(&cudnnGetErrorString) error_string = nullptr;
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnSetStream) set_stream = nullptr;
  decltype(&cudnnCreateTensorDescriptor) create_tensor = nullptr;
  decltype(&cudnnSetTensor4dDescriptorEx) set_tensor = nullptr;
  decltype(&cudnnCreateFilterDescriptor) create_filter = nullptr;
  decltype(&cudnnSetFilter4dDescriptor) set_filter = nullptr;
  decltype(&cudnnCreateConvolutionDescriptor) create_conv = nullptr;
  decltype(&cudnnSetConvolution2dDescriptor) set_conv = nullptr;
  decltype(&cudnnSetConvolutionMathType) set_math = nullptr;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) algorithms = nullptr;
  decltype(&cudnnGetConvolutionForwardWorkspaceSize) workspace_size = nullptr;
  decltype(&cudnnConvolutionForward) forward = nullptr;
  cudnnHandle_t handle = nullptr;
  std::string failure;  // why it is not usable; empty when it is
};

template <typename Fn>
bool resolve(void* library, const char* name, Fn* out, std::string* failure) {
  *out = reinterpret_cast<Fn>(dlsym(library, name));
  if (*out == nullptr && failure->empty()) *failure = fmt::format("libcudnn.so.9 has no {}", name);
  return *out != nullptr;
}

CudnnApi& api() {
  static CudnnApi loaded = [] {
    CudnnApi a;
    void* library = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* error = dlerror();
      a.failure = fmt::format("libcudnn.so.9 not loadable: {}", error ? error : "unknown");
      return a;
    }
    std::string& f = a.failure;
    resolve(library, "cudnnGetVersion", &a.get_version, &f);
    resolve(library, "cudnnGetErrorString", &a.error_string, &f);
    resolve(library, "cudnnCreate", &a.create, &f);
    resolve(library, "cudnnSetStream", &a.set_stream, &f);
    resolve(library, "cudnnCreateTensorDescriptor", &a.create_tensor, &f);
    resolve(library, "cudnnSetTensor4dDescriptorEx", &a.set_tensor, &f);
    resolve(library, "cudnnCreateFilterDescriptor", &a.create_filter, &f);
    resolve(library, "cudnnSetFilter4dDescriptor", &a.set_filter, &f);
    resolve(library, "cudnnCreateConvolutionDescriptor", &a.create_conv, &f);
    resolve(library, "cudnnSetConvolution2dDescriptor", &a.set_conv, &f);
    resolve(library, "cudnnSetConvolutionMathType", &a.set_math, &f);
    resolve(library, "cudnnGetConvolutionForwardAlgorithm_v7", &a.algorithms, &f);
    resolve(library, "cudnnGetConvolutionForwardWorkspaceSize", &a.workspace_size, &f);
    resolve(library, "cudnnConvolutionForward", &a.forward, &f);
    if (f.empty() && a.get_version() / 10000 != 9)
      f = fmt::format("libcudnn.so.9 reports version {}, not 9.x", a.get_version());
    if (f.empty()) {
      const cudnnStatus_t status = a.create(&a.handle);
      if (status != CUDNN_STATUS_SUCCESS) f = fmt::format("cudnnCreate failed: {}", a.error_string(status));
    }
    return a;
  }();
  return loaded;
}

void check(cudnnStatus_t status, const char* what, const CudnnConvShape& s) {
  if (status != CUDNN_STATUS_SUCCESS)
    fail("cuDNN {} failed ({}) for the conv {}x{}x{}x{} -> {} (kernel {}x{}x{})", what, api().error_string(status),
         s.frames, s.channels, s.height, s.width, s.outs, s.kt, s.kh, s.kw);
}

// Algorithms that need more scratch than this are passed over (the decoders' memory budget is 2 GiB in all).
constexpr size_t kWorkspaceLimit = size_t(512) << 20;

// All of a call's output frames as one cuDNN batch, with the per-frame plan's algorithm (so the choice never depends
// on the frame count). Made per frame count on first use; `usable` false where cuDNN refuses the batched
// descriptors (the frames' tap windows overlap when kt > 1) or needs more workspace: those calls go frame by frame.
struct BatchPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  size_t workspace = 0;
  bool usable = false;
};

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algorithm{};
  size_t workspace = 0;
  std::string failure;   // why cuDNN cannot run this shape; empty when it can
  std::map<int64_t, BatchPlan> batches;  // by frame count (guarded by plan_mutex)
};

std::mutex& plan_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The plan of one output frame: independent of how many frames a call holds.
using ShapeKey = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

// The first deterministic algorithm of cuDNN's heuristic ranking that fits the workspace limit. The heuristic
// (not cudnnFind, which times the candidates) keeps the choice, and so the output bytes, the same from run to run.
bool choose(Plan& plan) {
  CudnnApi& a = api();
  int returned = 0;
  cudnnConvolutionFwdAlgoPerf_t candidates[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  if (a.algorithms(a.handle, plan.x, plan.w, plan.conv, plan.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned,
                   candidates) != CUDNN_STATUS_SUCCESS)
    return false;
  for (int i = 0; i < returned; ++i) {
    const cudnnConvolutionFwdAlgoPerf_t& c = candidates[i];
    if (c.status != CUDNN_STATUS_SUCCESS || c.determinism != CUDNN_DETERMINISTIC) continue;
    size_t bytes = 0;
    if (a.workspace_size(a.handle, plan.x, plan.w, plan.conv, plan.y, c.algo, &bytes) != CUDNN_STATUS_SUCCESS ||
        bytes > kWorkspaceLimit)
      continue;
    plan.algorithm = c.algo;
    plan.workspace = bytes;
    return true;
  }
  return false;
}

Plan& plan_for(const CudnnConvShape& s) {
  static std::map<ShapeKey, std::unique_ptr<Plan>> plans;
  const std::lock_guard<std::mutex> lock(plan_mutex());
  const ShapeKey key{s.channels, s.height, s.width, s.outs, s.kt, s.kh, s.kw};
  auto found = plans.find(key);
  if (found != plans.end()) return *found->second;
  CudnnApi& a = api();
  auto plan = std::make_unique<Plan>();
  // Failures are cached too: the im2col fallback then costs one map lookup per call.
  const auto give_up = [&](std::string why) -> Plan& {
    plan->failure = std::move(why);
    return *plans.emplace(key, std::move(plan)).first->second;
  };
  if (!a.failure.empty()) return give_up(a.failure);
  if (s.kh % 2 == 0 || s.kw % 2 == 0 || s.frames <= 0 || s.channels <= 0 || s.outs <= 0)
    return give_up(fmt::format("unsupported shape (kernel {}x{}, {} frames)", s.kh, s.kw, s.frames));
  const int64_t in_channels = s.kt * s.channels, plane = s.height * s.width;
  check(a.create_tensor(&plan->x), "cudnnCreateTensorDescriptor", s);
  check(a.create_tensor(&plan->y), "cudnnCreateTensorDescriptor", s);
  check(a.create_filter(&plan->w), "cudnnCreateFilterDescriptor", s);
  check(a.create_conv(&plan->conv), "cudnnCreateConvolutionDescriptor", s);
  check(a.set_filter(plan->w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NCHW, int(s.outs), int(in_channels), int(s.kh),
                     int(s.kw)),
        "cudnnSetFilter4dDescriptor", s);
  check(a.set_conv(plan->conv, int(s.kh / 2), int(s.kw / 2), 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor", s);
  check(a.set_math(plan->conv, CUDNN_TENSOR_OP_MATH), "cudnnSetConvolutionMathType", s);
  // One output frame a call (see conv_cudnn.h): its input is the [kt * C, H, W] image at the frame's offset.
  check(a.set_tensor(plan->x, CUDNN_DATA_BFLOAT16, 1, int(in_channels), int(s.height), int(s.width),
                     int(in_channels * plane), int(plane), int(s.width), 1),
        "cudnnSetTensor4dDescriptorEx", s);
  check(a.set_tensor(plan->y, CUDNN_DATA_BFLOAT16, 1, int(s.outs), int(s.height), int(s.width), int(s.outs * plane),
                     int(plane), int(s.width), 1),
        "cudnnSetTensor4dDescriptorEx", s);
  if (!choose(*plan))
    return give_up(fmt::format("no deterministic algorithm within {} MiB of workspace", kWorkspaceLimit >> 20));
  return *plans.emplace(key, std::move(plan)).first->second;
}

// The batched form of `plan` for s.frames output frames (one call): input frame t's window starts one frame
// (channels x H x W elements) after frame t - 1's, so the batch stride is one frame even where windows overlap.
const BatchPlan& batch_plan_for(Plan& plan, const CudnnConvShape& s) {
  const std::lock_guard<std::mutex> lock(plan_mutex());
  auto found = plan.batches.find(s.frames);
  if (found != plan.batches.end()) return found->second;
  CudnnApi& a = api();
  BatchPlan& batch = plan.batches[s.frames];
  const int64_t in_channels = s.kt * s.channels, plane = s.height * s.width;
  if (a.create_tensor(&batch.x) != CUDNN_STATUS_SUCCESS || a.create_tensor(&batch.y) != CUDNN_STATUS_SUCCESS)
    return batch;
  if (a.set_tensor(batch.x, CUDNN_DATA_BFLOAT16, int(s.frames), int(in_channels), int(s.height), int(s.width),
                   int(s.channels * plane), int(plane), int(s.width), 1) != CUDNN_STATUS_SUCCESS ||
      a.set_tensor(batch.y, CUDNN_DATA_BFLOAT16, int(s.frames), int(s.outs), int(s.height), int(s.width),
                   int(s.outs * plane), int(plane), int(s.width), 1) != CUDNN_STATUS_SUCCESS)
    return batch;
  size_t bytes = 0;
  if (a.workspace_size(a.handle, batch.x, plan.w, plan.conv, batch.y, plan.algorithm, &bytes) !=
          CUDNN_STATUS_SUCCESS ||
      bytes > kWorkspaceLimit)
    return batch;
  batch.workspace = bytes;
  batch.usable = true;
  return batch;
}

// The batched plan when it is on (speed switch) and usable for this call, else null (frame by frame).
const BatchPlan* batch_for(Plan& plan, const CudnnConvShape& s) {
  if (!speed_switches().conv_batch_frames || s.frames < 2) return nullptr;
  const BatchPlan& batch = batch_plan_for(plan, s);
  return batch.usable ? &batch : nullptr;
}

}  // namespace

bool cudnn_available(std::string* why) {
  const CudnnApi& a = api();
  if (why) *why = a.failure;
  return a.failure.empty();
}

std::string cudnn_version() {
  if (!cudnn_available()) return "";
  const size_t v = api().get_version();
  return fmt::format("{}.{}.{}", v / 10000, v / 100 % 100, v % 100);
}

bool cudnn_conv_supported(const CudnnConvShape& shape, std::string* why) {
  Plan& plan = plan_for(shape);
  if (why) *why = plan.failure;
  return plan.failure.empty();
}

size_t cudnn_conv_workspace(const CudnnConvShape& s) {
  Plan& plan = plan_for(s);
  LF_CHECK(plan.failure.empty(), "cuDNN cannot run the conv {}x{}x{}x{} -> {} (kernel {}x{}x{}): {}", s.frames,
           s.channels, s.height, s.width, s.outs, s.kt, s.kh, s.kw, plan.failure);
  const BatchPlan* batch = batch_for(plan, s);
  return batch != nullptr ? batch->workspace : plan.workspace;
}

bool cudnn_conv_batched(const CudnnConvShape& shape) {
  Plan& plan = plan_for(shape);
  return plan.failure.empty() && batch_for(plan, shape) != nullptr;
}

std::string cudnn_conv_plan_text(const CudnnConvShape& shape) {
  Plan& plan = plan_for(shape);
  if (!plan.failure.empty()) return "im2col (" + plan.failure + ")";
  return fmt::format("cuDNN algo {} workspace {} B", int(plan.algorithm), plan.workspace);
}

void cudnn_conv(const CudnnConvShape& s, const uint16_t* frames_in, const uint16_t* weight, uint16_t* out,
                void* workspace, size_t workspace_bytes, Stream stream) {
  const size_t needed = cudnn_conv_workspace(s);  // throws where cuDNN cannot run the shape
  Plan& plan = plan_for(s);
  LF_CHECK(workspace_bytes >= needed, "cuDNN conv: {} bytes of workspace given, {} needed", workspace_bytes, needed);
  CudnnApi& a = api();
  check(a.set_stream(a.handle, static_cast<cudaStream_t>(stream)), "cudnnSetStream", s);
  const float one = 1.0f, zero = 0.0f;
  if (const BatchPlan* batch = batch_for(plan, s)) {
    check(a.forward(a.handle, &one, batch->x, frames_in, plan.w, weight, plan.conv, plan.algorithm, workspace,
                    batch->workspace, &zero, batch->y, out),
          "cudnnConvolutionForward (batched)", s);
    return;
  }
  const int64_t frame_in = s.channels * s.height * s.width, frame_out = s.outs * s.height * s.width;
  for (int64_t t = 0; t < s.frames; ++t)
    check(a.forward(a.handle, &one, plan.x, frames_in + t * frame_in, plan.w, weight, plan.conv, plan.algorithm,
                    workspace, plan.workspace, &zero, plan.y, out + t * frame_out),
          "cudnnConvolutionForward", s);
}

}  // namespace lf::gpu
