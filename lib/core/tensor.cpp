#include "core/tensor.h"

#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/host_block_cache.h"

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

namespace {
DeviceAllocator* g_device_allocator = nullptr;
}

const char* device_name(Device device) { return device == Device::CUDA ? "cuda" : "cpu"; }
void register_device_allocator(DeviceAllocator* allocator) { g_device_allocator = allocator; }
DeviceAllocator* device_allocator() { return g_device_allocator; }

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t size : shape) LF_CHECK(size >= 0, "negative tensor size in shape {}", shape_str(shape));
  Tensor tensor;
  tensor.shape_ = shape;
  tensor.dtype_ = dtype;
  tensor.device_ = device;
  const size_t bytes = tensor.nbytes();
  if (device == Device::CUDA) {
    DeviceAllocator* allocator = g_device_allocator;
    LF_CHECK(allocator != nullptr, "CUDA tensor requested but this build or process has no CUDA backend");
    void* memory = allocator->allocate(std::max<size_t>(bytes, 1));
    tensor.owner_ = std::shared_ptr<void>(memory, [allocator](void* pointer) { allocator->release(pointer); });
    tensor.data_ = memory;
    return tensor;
  }
  // 64-byte alignment for vector loads; at least one byte so data_ is never null. Large blocks are reused across
  // chunks (core/host_block_cache.h).
  const size_t padded = ((bytes + 63) / 64) * 64 + 64;
  const bool cached = padded >= kHostBlockMinBytes;
  void* memory = cached ? host_block_allocate(padded) : std::aligned_alloc(64, padded);
  LF_CHECK(memory != nullptr, "out of host memory allocating {} bytes for a tensor {}", bytes, shape_str(shape));
  if (cached)
    tensor.owner_ = std::shared_ptr<void>(memory, host_block_release);
  else
    tensor.owner_ = std::shared_ptr<void>(memory, std::free);
  tensor.data_ = memory;
  return tensor;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor tensor = empty(shape, dtype, device);
  if (device == Device::CUDA) g_device_allocator->zero(tensor.data_, tensor.nbytes());
  else std::memset(tensor.data_, 0, tensor.nbytes());
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
  LF_CHECK(device_ == Device::CPU, "host access to a {} tensor {} on the GPU", dtype_name(dtype_), shape_str(shape_));
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
  if (scales_ && scales_->numel() > 1) view.scales_ = std::make_shared<const Tensor>(scales_->slice_rows(begin, end));
  return view;
}

Tensor Tensor::with_scales(const Tensor& scales) const {
  LF_CHECK(scales.dtype() == DType::F32 && scales.device() == Device::CPU && scales.rank() <= 1 &&
               (scales.numel() == 1 || (rank() >= 1 && scales.numel() == shape_[0])),
           "scales {} ({}) for a {} tensor: expected f32 [1] or [{}]", shape_str(scales.shape()),
           dtype_name(scales.dtype()), shape_str(shape_), rank() >= 1 ? shape_[0] : 1);
  Tensor scaled = *this;
  scaled.scales_ = std::make_shared<const Tensor>(scales.reshape({scales.numel()}));
  return scaled;
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape_, dtype_, device_);
  copy.copy_from(*this);
  copy.scales_ = scales_;
  return copy;
}

void Tensor::copy_from(const Tensor& source) {
  LF_CHECK(source.shape_ == shape_ && source.dtype_ == dtype_, "copy: {} {} into {} {}", dtype_name(source.dtype_),
           shape_str(source.shape_), dtype_name(dtype_), shape_str(shape_));
  if (device_ == Device::CPU && source.device_ == Device::CPU) {
    std::memcpy(data_, source.data_, nbytes());
    return;
  }
  LF_CHECK(g_device_allocator != nullptr, "copy between devices without a CUDA backend");
  g_device_allocator->copy(data_, device_, source.data_, source.device_, nbytes());
}

Tensor Tensor::to(Device device) const {
  Tensor copy = empty(shape_, dtype_, device);
  copy.copy_from(*this);
  copy.scales_ = scales_;
  return copy;
}

Tensor Tensor::to(DType dtype) const {
  LF_CHECK(device_ == Device::CPU, "dtype conversion of a GPU tensor {} on the host", shape_str(shape_));
  if (dtype == dtype_) return clone();
  if (dtype == DType::F32) {
    Tensor out = empty(shape_, DType::F32);
    convert_to_f32(data_, dtype_, size_t(numel()), out.f32());
    if (scales_) {
      const int64_t rows = scales_->numel();
      const int64_t row_size = rows ? numel() / rows : 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < row_size; ++i) out.f32()[r * row_size + i] *= scales_->f32()[r];
    }
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
