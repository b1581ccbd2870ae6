#include "core/dtype.h"

#include <cmath>

#include "core/error.h"

namespace lf {

namespace {
struct DTypeInfo {
  DType dtype;
  size_t size;
  const char* name;
  const char* safetensors_name;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F32, 4, "f32", "F32"},      {DType::F16, 2, "f16", "F16"},
    {DType::BF16, 2, "bf16", "BF16"},   {DType::F8E4M3, 1, "f8e4m3", "F8_E4M3"},
    {DType::F64, 8, "f64", "F64"},      {DType::I64, 8, "i64", "I64"},
    {DType::I32, 4, "i32", "I32"},      {DType::I16, 2, "i16", "I16"},
    {DType::I8, 1, "i8", "I8"},         {DType::U8, 1, "u8", "U8"},
    {DType::Bool, 1, "bool", "BOOL"},
};
const DTypeInfo& info(DType dtype) {
  for (const auto& entry : kDTypes)
    if (entry.dtype == dtype) return entry;
  fail("internal: unknown dtype {}", int(dtype));
}
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
const char* dtype_name(DType dtype) { return info(dtype).name; }
const char* dtype_safetensors_name(DType dtype) { return info(dtype).safetensors_name; }
bool dtype_is_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F8E4M3 ||
         dtype == DType::F64;
}

bool dtype_from_safetensors_name(std::string_view name, DType* out) {
  for (const auto& entry : kDTypes) {
    if (name == entry.safetensors_name) {
      *out = entry.dtype;
      return true;
    }
  }
  return false;
}

float f16_to_f32(uint16_t bits) {
  const uint32_t sign = uint32_t(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(float(mantissa), -24);  // zero and subnormals
  } else if (exponent == 31) {
    magnitude = mantissa ? NAN : INFINITY;
  } else {
    magnitude = std::ldexp(float(mantissa | 0x400u), int(exponent) - 25);
  }
  uint32_t out;
  std::memcpy(&out, &magnitude, 4);
  out |= sign;
  float value;
  std::memcpy(&value, &out, 4);
  return value;
}

uint16_t f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  const float magnitude = std::fabs(value);
  if (std::isnan(value)) return sign | 0x7e00u;
  if (magnitude >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (magnitude < 6.103515625e-05f) {                 // subnormal range: multiples of 2^-24
    const float scaled = std::nearbyint(magnitude * 16777216.0f);
    return sign | uint16_t(scaled);
  }
  int exponent;
  const float fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction * 2^exponent, fraction in [0.5,1)
  float mantissa = std::nearbyint((fraction * 2.0f - 1.0f) * 1024.0f);
  int biased = exponent - 1 + 15;
  if (mantissa >= 1024.0f) {
    mantissa = 0;
    ++biased;
  }
  if (biased >= 31) return sign | 0x7c00u;
  return sign | uint16_t(biased << 10) | uint16_t(mantissa);
}

float f8e4m3_to_f32(uint8_t bits) {
  const bool negative = bits & 0x80u;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  if (exponent == 15 && mantissa == 7) return NAN;
  float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -9)
                                  : std::ldexp(float(8 + mantissa), exponent - 10);
  return negative ? -magnitude : magnitude;
}

uint8_t f32_to_f8e4m3(float value) {
  if (std::isnan(value)) return 0x7f;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7e;  // saturate: e4m3fn has no infinity
  // Brute force over the 127 non-negative codes keeps this obviously right; it only runs in tools and tests.
  uint8_t best = 0;
  float best_error = INFINITY;
  for (uint8_t code = 0; code < 0x7f; ++code) {
    const float error = std::fabs(f8e4m3_to_f32(code) - magnitude);
    if (error < best_error || (error == best_error && (code & 1) == 0)) {
      best = code;
      best_error = error;
    }
  }
  return sign | best;
}

void convert_to_f32(const void* src, DType dtype, size_t count, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * 4);
      return;
    case DType::BF16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(in[i]);
      return;
    }
    case DType::F16: {
      const auto* in = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(in[i]);
      return;
    }
    case DType::F8E4M3: {
      const auto* in = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = f8e4m3_to_f32(in[i]);
      return;
    }
    case DType::F64: {
      const auto* in = static_cast<const double*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
    case DType::I64: {
      const auto* in = static_cast<const int64_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
    case DType::I32: {
      const auto* in = static_cast<const int32_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
    case DType::I16: {
      const auto* in = static_cast<const int16_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
    case DType::I8: {
      const auto* in = static_cast<const int8_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
    case DType::U8:
    case DType::Bool: {
      const auto* in = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < count; ++i) dst[i] = float(in[i]);
      return;
    }
  }
  fail("internal: cannot convert dtype {} to f32", dtype_name(dtype));
}

void convert_from_f32(const float* src, size_t count, DType dtype, void* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * 4);
      return;
    case DType::BF16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F8E4M3: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = f32_to_f8e4m3(src[i]);
      return;
    }
    case DType::F64: {
      auto* out = static_cast<double*>(dst);
      for (size_t i = 0; i < count; ++i) out[i] = src[i];
      return;
    }
    default:
      fail("cannot convert f32 to {}", dtype_name(dtype));
  }
}

}  // namespace lf
