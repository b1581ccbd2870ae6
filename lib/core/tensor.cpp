#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lf {

std::string shape_str(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t size : shape) count *= size;
  return count;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t size : shape) LF_CHECK(size >= 0, "negative tensor size in shape {}", shape_str(shape));
  Tensor tensor;
  tensor.shape_ = shape;
  tensor.dtype_ = dtype;
  const size_t bytes = tensor.nbytes();
  // 64-byte alignment for vector loads; at least one byte so data_ is never null.
  void* memory = std::aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
  LF_CHECK(memory != nullptr, "out of host memory allocating {} bytes for a tensor {}", bytes, shape_str(shape));
  tensor.owner_ = std::shared_ptr<void>(memory, std::free);
  tensor.data_ = memory;
  return tensor;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor tensor = empty(shape, dtype);
  std::memset(tensor.data_, 0, tensor.nbytes());
  return tensor;
}

Tensor Tensor::view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner) {
  Tensor tensor;
  tensor.shape_ = shape;
  tensor.dtype_ = dtype;
  tensor.data_ = data;
  tensor.owner_ = std::move(owner);
  return tensor;
}

int64_t Tensor::dim(int axis) const {
  const int resolved = axis < 0 ? axis + rank() : axis;
  LF_CHECK(resolved >= 0 && resolved < rank(), "axis {} out of range for shape {}", axis, shape_str(shape_));
  return shape_[size_t(resolved)];
}

float* Tensor::f32() {
  LF_CHECK(dtype_ == DType::F32, "expected an f32 tensor, found {} {}", dtype_name(dtype_), shape_str(shape_));
  return static_cast<float*>(data_);
}

const float* Tensor::f32() const { return const_cast<Tensor*>(this)->f32(); }

Tensor Tensor::reshape(const Shape& shape) const {
  LF_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
  Tensor view = *this;
  view.shape_ = shape;
  return view;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  LF_CHECK(rank() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "row slice [{}, {}) out of range for {}",
           begin, end, shape_str(shape_));
  const size_t row_bytes = shape_[0] ? nbytes() / size_t(shape_[0]) : 0;
  Tensor view = *this;
  view.shape_[0] = end - begin;
  view.data_ = static_cast<char*>(data_) + size_t(begin) * row_bytes;
  return view;
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape_, dtype_);
  std::memcpy(copy.data_, data_, nbytes());
  return copy;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return clone();
  if (dtype == DType::F32) {
    Tensor out = empty(shape_, DType::F32);
    convert_to_f32(data_, dtype_, size_t(numel()), out.f32());
    return out;
  }
  const Tensor as_f32 = to(DType::F32);
  Tensor out = empty(shape_, dtype);
  convert_from_f32(as_f32.f32(), size_t(numel()), dtype, out.data_);
  return out;
}

void check_shape(const Tensor& tensor, const Shape& expected, const char* what) {
  bool ok = tensor.rank() == int(expected.size());
  for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == tensor.shape()[i];
  LF_CHECK(ok, "{}: expected shape {}, found {}", what, shape_str(expected), shape_str(tensor.shape()));
}

}  // namespace lf
