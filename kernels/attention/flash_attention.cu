// Public entry of the flash attention kernels: one selector decides support and dispatch for every variant.
#include "kernels/attention/flash_attention.h"

#include <cmath>

#include "kernels/attention/flash_fwd_hopper.cuh"
#include "kernels/attention/flash_fwd_mma.cuh"
#include "kernels/cuda_check.h"
#include "kernels/speed_switches.h"

namespace lf::gpu {

const char* flash_variant_name(FlashVariant variant) {
  switch (variant) {
    case FlashVariant::Auto: return "auto";
    case FlashVariant::MmaSync: return "mma_sync";
    case FlashVariant::Hopper: return "hopper";
  }
  return "unknown";
}

namespace {

bool refuse(std::string* why, std::string reason) {
  if (why != nullptr) *why = std::move(reason);
  return false;
}

// Checks every variant shares: shapes, scale, and the 16-byte alignment that cp.async and TMA both need.
bool parameters_supported(const FlashAttentionParams& p, std::string* why) {
  if (p.q == nullptr || p.k == nullptr || p.v == nullptr || p.out == nullptr)
    return refuse(why, "flash attention: q, k, v and out must all be device pointers (one is null)");
  if (p.head_dim != 64 && p.head_dim != 128)
    return refuse(why, fmt::format("flash attention: head_dim {} is not supported (64 or 128)", p.head_dim));
  if (p.lq <= 0 || p.lk <= 0 || p.heads <= 0)
    return refuse(why, fmt::format("flash attention: empty problem (lq {}, lk {}, heads {})", p.lq, p.lk, p.heads));
  if (p.heads > 65535)
    return refuse(why, fmt::format("flash attention: {} heads is over the grid limit of 65535", p.heads));
  if (!std::isfinite(p.scale) || p.scale <= 0.f)
    return refuse(why, fmt::format("flash attention: scale {} must be finite and positive", p.scale));
  const int64_t row = int64_t(p.heads) * p.head_dim;
  const struct {
    const char* name;
    const void* pointer;
    int64_t stride;
  } tensors[] = {{"q", p.q, p.q_row_stride}, {"k", p.k, p.k_row_stride}, {"v", p.v, p.v_row_stride},
                 {"out", p.out, p.out_row_stride}};
  for (const auto& t : tensors) {
    if (t.stride < row)
      return refuse(why, fmt::format("flash attention: {} row stride {} is shorter than heads * head_dim = {}",
                                     t.name, t.stride, row));
    if (t.stride % 8 != 0)
      return refuse(why, fmt::format("flash attention: {} row stride {} is not a multiple of 8 elements (16-byte "
                                     "rows are needed by cp.async/TMA)",
                                     t.name, t.stride));
    if (reinterpret_cast<uintptr_t>(t.pointer) % 16 != 0)
      return refuse(why, fmt::format("flash attention: {} pointer {} is not 16-byte aligned", t.name, t.pointer));
  }
  return true;
}

bool device_compute_capability(int* major, int* minor, std::string* why) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return refuse(why, "flash attention: no usable CUDA device");
  }
  return true;
}

bool variant_supported(FlashVariant variant, int major, int minor, std::string* why) {
  switch (variant) {
    case FlashVariant::MmaSync:
      if (major < 8)
        return refuse(why, fmt::format("flash attention (mma_sync): needs sm_80 or newer, device is sm_{}{}", major,
                                       minor));
      return true;
    case FlashVariant::Hopper:
      if (major != 9 || minor != 0)
        return refuse(why, fmt::format("flash attention (hopper): needs an sm_90 device (H100/H200), device is "
                                       "sm_{}{}",
                                       major, minor));
      if (!flash::hopper_kernels_built())
        return refuse(why, "flash attention (hopper): this build has no sm_90a code (configure with "
                           "-DLF_CUDA_ARCHS=90a to enable wgmma/TMA)");
      return true;
    case FlashVariant::Auto: break;
  }
  return refuse(why, "flash attention: Auto is not a concrete variant");
}

}  // namespace

bool flash_attention_select(const FlashAttentionParams& params, FlashVariant requested, FlashVariant* chosen,
                            std::string* why) {
  if (!parameters_supported(params, why)) return false;
  int major = 0, minor = 0;
  if (!device_compute_capability(&major, &minor, why)) return false;
  // LF_FLASH_VARIANT (speed_switches.h) replaces a requested Auto: the documented way to pin a kernel.
  if (requested == FlashVariant::Auto) requested = speed_switches().flash_variant;
  if (requested != FlashVariant::Auto) {
    if (!variant_supported(requested, major, minor, why)) return false;
    if (chosen != nullptr) *chosen = requested;
    return true;
  }
  // Auto: fastest first.
  for (FlashVariant candidate : {FlashVariant::Hopper, FlashVariant::MmaSync}) {
    if (variant_supported(candidate, major, minor, nullptr)) {
      if (chosen != nullptr) *chosen = candidate;
      return true;
    }
  }
  return variant_supported(FlashVariant::MmaSync, major, minor, why);  // for its reason
}

FlashVariant flash_variant_from_environment(FlashVariant requested) {
  return requested == FlashVariant::Auto ? speed_switches().flash_variant : requested;
}

bool flash_attention_supported(const FlashAttentionParams& params, FlashVariant variant, std::string* why) {
  return flash_attention_select(params, variant, nullptr, why);
}

void flash_attention_forward(const FlashAttentionParams& params, FlashVariant variant, void* stream) {
  FlashVariant chosen = FlashVariant::Auto;
  std::string why;
  if (!flash_attention_select(params, variant, &chosen, &why)) throw Error(why);
  const flash::FlashKernelArgs args = flash::make_kernel_args(params);
  const cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  if (chosen == FlashVariant::Hopper)
    flash::run_flash_fwd_hopper_dense(args, params.head_dim, cuda_stream);
  else
    flash::run_flash_fwd_mma_dense(args, params.head_dim, cuda_stream);
}

}  // namespace lf::gpu
