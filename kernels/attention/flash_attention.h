#pragma once
// Dense flash attention forward on the GPU: out = softmax(q k^T * scale) v per head, no mask.
// Host-side API with plain C++ types: g++-compiled code includes this without CUDA headers.
//
// Layout: token-major with heads interleaved. q [lq, heads, head_dim], k/v [lk, heads, head_dim],
// out [lq, heads, head_dim], all bf16 on the device. Each tensor has its own row stride (elements between
// token t and t+1), so views into wider buffers (a fused qkv projection, a KV cache slice) work without copies;
// inside a row, head h starts at h * head_dim and the head_dim values are contiguous.
#include <cstdint>
#include <string>

namespace lf::gpu {

struct FlashAttentionParams {
  const void* q = nullptr;  // bf16 device pointers
  const void* k = nullptr;
  const void* v = nullptr;
  void* out = nullptr;
  int64_t q_row_stride = 0;  // elements
  int64_t k_row_stride = 0;
  int64_t v_row_stride = 0;
  int64_t out_row_stride = 0;
  int lq = 0;
  int lk = 0;
  int heads = 0;
  int head_dim = 0;  // 64 or 128
  float scale = 0;   // usually 1/sqrt(head_dim); must be finite and > 0
};

enum class FlashVariant {
  Auto,     // the fastest supported variant (see flash_attention_select); LF_FLASH_VARIANT=mma|hopper overrides
  MmaSync,  // portable sm_80+ path: mma.sync m16n8k16 + ldmatrix + cp.async pipeline
  Hopper,   // sm_90a path: TMA + wgmma, producer/consumer warp specialisation (needs a build for 90a)
};

const char* flash_variant_name(FlashVariant variant);  // "auto", "mma_sync", "hopper"

// The one selector behind both functions below: resolves Auto and checks the request against the device, the
// build and the parameters. Returns false (and says why, naming the value) when nothing suitable exists.
bool flash_attention_select(const FlashAttentionParams& params, FlashVariant requested, FlashVariant* chosen,
                            std::string* why);

// `requested`, except that Auto becomes the variant LF_FLASH_VARIANT pins (still Auto when unset or "auto"); throws
// lf::Error for an unknown value. flash_attention_select applies it; exposed for the block-sparse selector.
FlashVariant flash_variant_from_environment(FlashVariant requested);

// Whether `variant` (Auto: any) can run these parameters; `why` (may be null) gets the reason when not.
bool flash_attention_supported(const FlashAttentionParams& params, FlashVariant variant, std::string* why);

// Launches asynchronously on `stream` (a cudaStream_t; null = the legacy default stream). Unsupported
// parameters throw lf::Error naming the value; launch errors throw lf::Error from LF_CUDA_CHECK.
void flash_attention_forward(const FlashAttentionParams& params, FlashVariant variant = FlashVariant::Auto,
                             void* stream = nullptr);

}  // namespace lf::gpu
