#pragma once
// Element types of weights and activations, and the scalar conversions the CPU path needs.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace lf {

enum class DType : uint8_t { F32, F16, BF16, F8E4M3, F64, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);            // "f32", "bf16", ... (for messages and `inspect`)
const char* dtype_safetensors_name(DType dtype);  // "F32", "BF16", "F8_E4M3", ...
bool dtype_from_safetensors_name(std::string_view name, DType* out);
bool dtype_is_float(DType dtype);

inline float bf16_to_f32(uint16_t bits) {
  uint32_t wide = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

// Round to nearest even, as PyTorch and the GPU do; NaN stays NaN.
inline uint16_t f32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t(bits >> 16);
}

inline float round_to_bf16(float value) { return bf16_to_f32(f32_to_bf16(value)); }

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
// OCP FP8 E4M3 "fn" variant (PyTorch float8_e4m3fn): no infinities, 0x7f/0xff are NaN, max 448.
float f8e4m3_to_f32(uint8_t bits);
uint8_t f32_to_f8e4m3(float value);

// Converts `count` elements of `dtype` at `src` to fp32 (float types and integers).
void convert_to_f32(const void* src, DType dtype, size_t count, float* dst);
// Converts fp32 to a float `dtype` with round-to-nearest-even.
void convert_from_f32(const float* src, size_t count, DType dtype, void* dst);

}  // namespace lf
