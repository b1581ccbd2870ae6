// C ABI over the flash attention kernels, for Python (ctypes) benchmarks next to PyTorch SDPA.
//
//   int lf_flash_attention_forward(q, k, v, out, q_row_stride, k_row_stride, v_row_stride, out_row_stride,
//                                  lq, lk, heads, head_dim, scale, variant, stream)
//     variant: 0 = auto, 1 = mma_sync, 2 = hopper. Returns 0 on success, non-zero on error (the message is in
//     lf_last_error()). Launches asynchronously on `stream` (a cudaStream_t, e.g. torch.cuda.current_stream()
//     .cuda_stream; 0 = the legacy default stream).
//   int lf_flash_attention_supported(same parameters minus the stream) -> 1 / 0 (reason in lf_last_error()).
//   const char* lf_last_error()  — this thread's last message ("" after a success).
#include <cstdint>
#include <exception>
#include <string>

#include "kernels/attention/flash_attention.h"

namespace {

thread_local std::string last_error;

bool variant_from_int(int value, lf::gpu::FlashVariant* variant) {
  switch (value) {
    case 0: *variant = lf::gpu::FlashVariant::Auto; return true;
    case 1: *variant = lf::gpu::FlashVariant::MmaSync; return true;
    case 2: *variant = lf::gpu::FlashVariant::Hopper; return true;
  }
  last_error = "lf_flash_attention: variant " + std::to_string(value) + " is not 0 (auto), 1 (mma_sync) or 2 (hopper)";
  return false;
}

lf::gpu::FlashAttentionParams make_params(const void* q, const void* k, const void* v, void* out,
                                          int64_t q_row_stride, int64_t k_row_stride, int64_t v_row_stride,
                                          int64_t out_row_stride, int lq, int lk, int heads, int head_dim,
                                          float scale) {
  lf::gpu::FlashAttentionParams p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.q_row_stride = q_row_stride;
  p.k_row_stride = k_row_stride;
  p.v_row_stride = v_row_stride;
  p.out_row_stride = out_row_stride;
  p.lq = lq;
  p.lk = lk;
  p.heads = heads;
  p.head_dim = head_dim;
  p.scale = scale;
  return p;
}

}  // namespace

extern "C" {

const char* lf_last_error() { return last_error.c_str(); }

int lf_flash_attention_forward(const void* q, const void* k, const void* v, void* out, int64_t q_row_stride,
                               int64_t k_row_stride, int64_t v_row_stride, int64_t out_row_stride, int lq, int lk,
                               int heads, int head_dim, float scale, int variant, void* stream) {
  lf::gpu::FlashVariant chosen;
  if (!variant_from_int(variant, &chosen)) return 2;
  try {
    lf::gpu::flash_attention_forward(make_params(q, k, v, out, q_row_stride, k_row_stride, v_row_stride,
                                                 out_row_stride, lq, lk, heads, head_dim, scale),
                                     chosen, stream);
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
  last_error.clear();
  return 0;
}

int lf_flash_attention_supported(const void* q, const void* k, const void* v, void* out, int64_t q_row_stride,
                                 int64_t k_row_stride, int64_t v_row_stride, int64_t out_row_stride, int lq, int lk,
                                 int heads, int head_dim, float scale, int variant) {
  lf::gpu::FlashVariant chosen;
  if (!variant_from_int(variant, &chosen)) return 0;
  try {
    std::string why;
    const bool ok = lf::gpu::flash_attention_supported(
        make_params(q, k, v, out, q_row_stride, k_row_stride, v_row_stride, out_row_stride, lq, lk, heads, head_dim,
                    scale),
        chosen, &why);
    last_error = ok ? std::string() : why;
    return ok ? 1 : 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 0;
  }
}

}  // extern "C"
