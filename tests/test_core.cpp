#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/digest.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/host_block_cache.h"
#include "core/tensor.h"
#include "test_util.h"

using namespace lf;

TEST_CASE("bf16 rounds to nearest even and round-trips") {
  CHECK(bf16_to_f32(f32_to_bf16(1.0f)) == 1.0f);
  CHECK(round_to_bf16(1.00390625f) == 1.0f);       // halfway between 1 and 1+2^-7: ties to even
  CHECK(round_to_bf16(1.01171875f) == 1.015625f);  // halfway, rounds up to even mantissa
  CHECK(std::isnan(round_to_bf16(NAN)));
}

TEST_CASE("f16 conversion covers normals, subnormals and overflow") {
  for (float value : {0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f, 0.333251953125f})
    CHECK(f16_to_f32(f32_to_f16(value)) == value);
  CHECK(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  CHECK(f16_to_f32(0x3c00) == 1.0f);
}

TEST_CASE("fp8 e4m3fn decodes its extremes") {
  CHECK(f8e4m3_to_f32(0x7e) == 448.0f);
  CHECK(f8e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
  CHECK(std::isnan(f8e4m3_to_f32(0x7f)));
  CHECK(f8e4m3_to_f32(0x38) == 1.0f);
  for (int code = 0; code < 0x7f; ++code) CHECK(f32_to_f8e4m3(f8e4m3_to_f32(uint8_t(code))) == code);
  CHECK(f32_to_f8e4m3(1000.0f) == 0x7e);  // saturates
}

// The format's definition written out independently of lib/core: sign, 4 exponent bits (bias 7), 3 mantissa bits;
// exponent 0 is subnormal (m/8 * 2^-6); S.1111.111 is NaN; there is no infinity.
double e4m3fn_by_definition(uint8_t code) {
  const double sign = (code & 0x80) ? -1.0 : 1.0;
  const int exponent = (code >> 3) & 0xf, mantissa = code & 7;
  if (exponent == 15 && mantissa == 7) return NAN;
  if (exponent == 0) return sign * std::ldexp(mantissa / 8.0, -6);
  return sign * std::ldexp(1.0 + mantissa / 8.0, exponent - 7);
}

TEST_CASE("fp8 e4m3fn: every code (negative, subnormal, NaN) decodes as the format defines; encoding rounds to even") {
  for (int code = 0; code < 256; ++code) {
    CAPTURE(code);
    const double expected = e4m3fn_by_definition(uint8_t(code));
    const float decoded = f8e4m3_to_f32(uint8_t(code));
    if (std::isnan(expected)) {
      CHECK(std::isnan(decoded));
    } else {
      CHECK(double(decoded) == expected);
      CHECK(std::signbit(decoded) == bool(code & 0x80));  // -0 (0x80) keeps its sign
      CHECK(f32_to_f8e4m3(decoded) == code);
    }
  }
  // Ties go to the even mantissa: normal, subnormal and negative midpoints.
  CHECK(f32_to_f8e4m3(1.0625f) == 0x38);                 // between 1 (0x38) and 1.125 (0x39)
  CHECK(f32_to_f8e4m3(1.1875f) == 0x3a);                 // between 1.125 (0x39) and 1.25 (0x3a)
  CHECK(f32_to_f8e4m3(-1.0625f) == 0xb8);
  CHECK(f32_to_f8e4m3(std::ldexp(1.0f, -10)) == 0x00);      // half the smallest subnormal: to zero (even)
  CHECK(f32_to_f8e4m3(std::ldexp(3.0f, -10)) == 0x02);      // between 0x01 and 0x02: to 0x02 (even)
  CHECK(f32_to_f8e4m3(std::ldexp(1.0f, -10) * 1.01f) == 0x01);  // just above the midpoint: up
  CHECK(f32_to_f8e4m3(-1000.0f) == 0xfe);                 // saturates at -448
  CHECK((f32_to_f8e4m3(NAN) & 0x7f) == 0x7f);             // NaN stays NaN
}

TEST_CASE("tensor views share storage and check shapes") {
  Tensor tensor = test::random_tensor({4, 3}, 1);
  Tensor rows = tensor.slice_rows(1, 3);
  CHECK(rows.shape() == Shape{2, 3});
  CHECK(rows.f32()[0] == tensor.f32()[3]);
  CHECK_THROWS_WITH_AS(tensor.reshape({5, 2}), "cannot reshape [4, 3] to [5, 2]", Error);
  Tensor half = tensor.to(DType::BF16);
  CHECK(test::rel_l2(half.to(DType::F32), tensor) < 1e-2);
  CHECK_THROWS_AS(half.f32(), Error);
}

TEST_CASE("large host tensors reuse freed blocks of their size; the idle cache stays under its cap") {
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("sanitizer build: the cache is bypassed (every block is freed, so use-after-free stays detectable)");
  CHECK(host_block_cached_bytes() == 0);
#else
  const size_t idle_before = host_block_cached_bytes();
  const void* first = nullptr;
  {
    Tensor frame = Tensor::empty({3, 256, 256});  // 768 KiB: cached
    first = frame.raw();
    frame.f32()[0] = 1.0f;
  }
  CHECK(host_block_cached_bytes() >= idle_before + (size_t(768) << 10));
  {
    Tensor again = Tensor::empty({3, 256, 256});
    CHECK(again.raw() == first);  // the same block, not a fresh one from the heap
    CHECK(reinterpret_cast<uintptr_t>(again.raw()) % 64 == 0);
    Tensor other = Tensor::empty({3, 256, 257});  // another size: never the block in use
    CHECK(other.raw() != again.raw());
  }
  {
    Tensor small = Tensor::empty({100});  // under kHostBlockMinBytes: plain malloc, never held idle
    small.f32()[99] = 2.0f;
  }
  // Two blocks over half the cap each: the older one is freed when the second goes idle.
  {
    const int64_t big = int64_t(kHostBlockIdleCapBytes / 4 * 3 / 4);  // f32 elements: 3/4 of the cap in bytes
    Tensor a = Tensor::empty({big});
    Tensor b = Tensor::empty({big + 1024});
  }
  CHECK(host_block_cached_bytes() <= kHostBlockIdleCapBytes);
#endif
}

#include "core/philox.h"

TEST_CASE("Philox4x32-10 matches the Random123 known-answer vectors") {
  // Known-answer test from Random123's kat_vectors: philox4x32_10 with counter/key all ones bits pattern.
  const uint32_t counter[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  const uint32_t key[2] = {0xffffffffu, 0xffffffffu};
  uint32_t out[4];
  philox4x32(counter, key, out);
  CHECK(out[0] == 0x408f276du);
  CHECK(out[1] == 0x41c83b0eu);
  CHECK(out[2] == 0xa20bc7c6u);
  CHECK(out[3] == 0x6d5451fdu);
  const uint32_t zero_counter[4] = {0, 0, 0, 0};
  const uint32_t zero_key[2] = {0, 0};
  philox4x32(zero_counter, zero_key, out);
  CHECK(out[0] == 0x6627e8d5u);
  CHECK(out[1] == 0xe169c58du);
  CHECK(out[2] == 0xbc57ac4cu);
  CHECK(out[3] == 0x9b00dbd8u);
}

TEST_CASE("normal draws are keyed by (seed, stream, step, element) and look Gaussian") {
  Tensor a = Tensor::empty({4096}), b = Tensor::empty({4096}), c = Tensor::empty({4096});
  fill_normal(a, {7, 1, 2});
  fill_normal(b, {7, 1, 2});
  fill_normal(c, {7, 1, 3});
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  CHECK(test::rel_l2(a, c) > 1.0);
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < 4096; ++i) sum += a.f32()[i], sum_sq += double(a.f32()[i]) * a.f32()[i];
  CHECK(std::fabs(sum / 4096) < 0.06);
  CHECK(std::fabs(sum_sq / 4096 - 1.0) < 0.08);
  CHECK(philox_normal({7, 1, 2}, 100) == a.f32()[100]);
}

TEST_CASE("SHA-256 matches the FIPS 180-4 known answers") {
  CHECK(sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 56 bytes: padding spills
  CHECK(sha256_hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // A million 'a', fed in uneven pieces: the streaming buffer must not depend on how the input is split.
  Sha256 hash;
  const std::string piece(997, 'a');
  size_t fed = 0;
  while (fed < 1000000) {
    const size_t take = std::min<size_t>(piece.size(), 1000000 - fed);
    hash.update(piece.data(), take);
    fed += take;
  }
  CHECK(hash.hex_digest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("FP8 tensors carry per-row scales through views, copies and conversion") {
  Tensor stored = Tensor::empty({3, 2}, DType::F8E4M3);
  const float values[6] = {1.0f, -2.0f, 0.5f, 4.0f, -0.25f, 3.0f};  // all exact in e4m3
  for (int i = 0; i < 6; ++i) static_cast<uint8_t*>(stored.raw())[i] = f32_to_f8e4m3(values[i]);
  Tensor scales = Tensor::empty({3});
  scales.f32()[0] = 2.0f, scales.f32()[1] = 0.5f, scales.f32()[2] = -3.0f;
  const Tensor scaled = stored.with_scales(scales);
  const Tensor dense = scaled.to(DType::F32);
  const float expected[6] = {2.0f, -4.0f, 0.25f, 2.0f, 0.75f, -9.0f};
  for (int i = 0; i < 6; ++i) CHECK(dense.f32()[i] == expected[i]);
  // A row slice keeps its rows' scales; a clone keeps them too.
  const Tensor last_two = scaled.slice_rows(1, 3).clone().to(DType::F32);
  for (int i = 0; i < 4; ++i) CHECK(last_two.f32()[i] == expected[2 + i]);
  CHECK(stored.to(DType::F32).f32()[5] == 3.0f);  // the unscaled tensor is untouched
  CHECK_THROWS_AS(stored.with_scales(Tensor::empty({2})), Error);  // neither one value nor one per row
}
