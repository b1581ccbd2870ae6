// Flash attention kernels vs the CPU reference lf::ops::attention, on random bf16-rounded inputs.
// Every variant the device and build support runs at ragged and tile-multiple shapes for both head dims; the
// output buffer is poisoned with NaN first so an unwritten element fails (rel_l2 turns NaN into +Inf).
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/attention/flash_attention.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/ops.h"
#include "test_util.h"

namespace {

using lf::Tensor;
using lf::gpu::FlashAttentionParams;
using lf::gpu::FlashVariant;

// fp32 tensor -> bf16 bits, and the fp32 tensor rounded to those bits (what the kernel actually sees).
std::vector<uint16_t> to_bf16(Tensor& tensor) {
  std::vector<uint16_t> bits(size_t(tensor.numel()));
  float* data = tensor.f32();
  for (size_t i = 0; i < bits.size(); ++i) {
    bits[i] = lf::f32_to_bf16(data[i]);
    data[i] = lf::bf16_to_f32(bits[i]);
  }
  return bits;
}

struct DeviceCopy {
  void* ptr = nullptr;
  DeviceCopy(const void* host, size_t bytes) {
    REQUIRE(cudaMalloc(&ptr, bytes) == cudaSuccess);
    if (host != nullptr) REQUIRE(cudaMemcpy(ptr, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceCopy() { cudaFree(ptr); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
};

struct Problem {
  int lq, lk, heads, head_dim;
  float amplitude;  // of q and k
};

// Runs `variant` on a problem and returns rel_l2 against lf::ops::attention.
double run_against_reference(const Problem& pr, FlashVariant variant, uint64_t seed) {
  Tensor q = lf::test::random_tensor({pr.lq, pr.heads, pr.head_dim}, seed, pr.amplitude);
  Tensor k = lf::test::random_tensor({pr.lk, pr.heads, pr.head_dim}, seed + 1, pr.amplitude);
  Tensor v = lf::test::random_tensor({pr.lk, pr.heads, pr.head_dim}, seed + 2, 1.0f);
  const auto qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
  const double scale = 1.0 / std::sqrt(double(pr.head_dim));
  const Tensor expected = lf::ops::attention(q, k, v, scale);

  const size_t out_bytes = qb.size() * 2;
  DeviceCopy dq(qb.data(), qb.size() * 2), dk(kb.data(), kb.size() * 2), dv(vb.data(), vb.size() * 2),
      dout(nullptr, out_bytes);
  REQUIRE(cudaMemset(dout.ptr, 0xff, out_bytes) == cudaSuccess);  // NaN poison
  const int64_t row = int64_t(pr.heads) * pr.head_dim;
  FlashAttentionParams p;
  p.q = dq.ptr;
  p.k = dk.ptr;
  p.v = dv.ptr;
  p.out = dout.ptr;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.out_row_stride = row;
  p.lq = pr.lq;
  p.lk = pr.lk;
  p.heads = pr.heads;
  p.head_dim = pr.head_dim;
  p.scale = float(scale);
  lf::gpu::flash_attention_forward(p, variant, nullptr);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);

  std::vector<uint16_t> got_bits(qb.size());
  REQUIRE(cudaMemcpy(got_bits.data(), dout.ptr, out_bytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  Tensor got = Tensor::empty(expected.shape());
  for (size_t i = 0; i < got_bits.size(); ++i) got.f32()[i] = lf::bf16_to_f32(got_bits[i]);
  return lf::test::rel_l2(got, expected);
}

std::vector<FlashVariant> supported_variants(int head_dim) {
  // Support depends on the device and the build (hopper needs sm_90 + a 90a build), not on these pointers'
  // contents: any aligned non-null stand-ins will do for the query.
  alignas(16) static char stand_in[16];
  FlashAttentionParams p;
  p.q = p.k = p.v = stand_in;
  p.out = stand_in;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.out_row_stride = head_dim;
  p.lq = p.lk = p.heads = 1;
  p.head_dim = head_dim;
  p.scale = 1.f;
  std::vector<FlashVariant> variants;
  for (FlashVariant v : {FlashVariant::MmaSync, FlashVariant::Hopper, FlashVariant::Auto}) {
    std::string why;
    if (lf::gpu::flash_attention_supported(p, v, &why))
      variants.push_back(v);
    else {
      const std::string note = "skipping " + std::string(lf::gpu::flash_variant_name(v)) + ": " + why;
      MESSAGE(note);
    }
  }
  return variants;
}

}  // namespace

TEST_CASE("flash attention matches the CPU reference (ragged and tile-multiple shapes, head_dim 64 and 128)") {
  const Problem problems[] = {
      {77, 131, 3, 64, 1.0f},    // ragged query and key tiles
      {128, 256, 2, 128, 1.0f},  // exact tiles
      {300, 1000, 2, 128, 4.0f},  // ragged, peaky softmax (scores far beyond exp's range without the max shift)
      {200, 190, 3, 64, 2.0f},   // fewer keys than one query block, ragged both ways
      {1, 5, 1, 128, 1.0f},      // a single query row
  };
  uint64_t seed = 17;
  for (const Problem& pr : problems) {
    for (FlashVariant variant : supported_variants(pr.head_dim)) {
      CAPTURE(pr.lq);
      CAPTURE(pr.lk);
      CAPTURE(pr.heads);
      CAPTURE(pr.head_dim);
      const std::string name = lf::gpu::flash_variant_name(variant);
      CAPTURE(name);
      const double error = run_against_reference(pr, variant, seed += 3);
      CHECK(error < 1e-2);
    }
  }
}

TEST_CASE("flash attention: NaN in the output never passes the check") {
  Tensor reference = lf::test::random_tensor({4, 2, 64}, 5);
  Tensor poisoned = reference.clone();
  poisoned.f32()[3] = NAN;
  CHECK_FALSE(lf::test::rel_l2(poisoned, reference) < 1e-2);
}

TEST_CASE("flash attention refuses unsupported parameters with a message naming the value") {
  alignas(16) static char stand_in[16];
  FlashAttentionParams p;
  p.q = p.k = p.v = stand_in;
  p.out = stand_in;
  p.q_row_stride = p.k_row_stride = p.v_row_stride = p.out_row_stride = 96 * 2;
  p.lq = p.lk = 8;
  p.heads = 2;
  p.head_dim = 96;
  p.scale = 0.1f;
  std::string why;
  CHECK_FALSE(lf::gpu::flash_attention_supported(p, FlashVariant::Auto, &why));
  CHECK(why.find("96") != std::string::npos);
  CHECK_THROWS_AS(lf::gpu::flash_attention_forward(p, FlashVariant::Auto, nullptr), lf::Error);

  p.head_dim = 64;
  p.q_row_stride = 100;  // shorter than heads * head_dim and not a multiple of 8
  CHECK_FALSE(lf::gpu::flash_attention_supported(p, FlashVariant::MmaSync, &why));
  CHECK(why.find("100") != std::string::npos);
}

#endif  // LF_HAVE_CUDA
