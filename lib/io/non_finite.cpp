#include "io/non_finite.h"

#include "core/error.h"

namespace lf {

namespace {

// All exponent bits set means Inf or NaN in IEEE formats; e4m3fn has no Inf and one NaN pattern (S.1111.111).
template <typename Bits>
int64_t first_with_exponent(const void* data, int64_t count, Bits exponent_mask) {
  const Bits* values = static_cast<const Bits*>(data);
  for (int64_t i = 0; i < count; ++i)
    if ((values[i] & exponent_mask) == exponent_mask) return i;
  return -1;
}

}  // namespace

int64_t find_non_finite(const Tensor& tensor) {
  LF_CHECK(tensor.device() == Device::CPU, "find_non_finite: tensor must be on the host");
  const int64_t count = tensor.numel();
  const void* data = tensor.raw();
  switch (tensor.dtype()) {
    case DType::F32: return first_with_exponent<uint32_t>(data, count, 0x7f800000u);
    case DType::F64: return first_with_exponent<uint64_t>(data, count, 0x7ff0000000000000ull);
    case DType::F16: return first_with_exponent<uint16_t>(data, count, 0x7c00);
    case DType::BF16: return first_with_exponent<uint16_t>(data, count, 0x7f80);
    case DType::F8E4M3: return first_with_exponent<uint8_t>(data, count, 0x7f);
    default: return -1;
  }
}

void check_finite(const Tensor& tensor, const std::string& what) {
  const int64_t at = find_non_finite(tensor);
  LF_CHECK(at < 0, "{} has a non-finite value (NaN or Inf) at element {} of {} {}", what, at,
           dtype_name(tensor.dtype()), shape_str(tensor.shape()));
}

}  // namespace lf
