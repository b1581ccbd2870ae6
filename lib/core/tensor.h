#pragma once
// A dense, contiguous, row-major tensor. Storage is shared (views and mmap'd weights keep their owner alive);
// the CPU reference path computes in f32, other dtypes exist for loading, saving and the GPU path.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lf {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[3, 16, 60, 104]"
int64_t shape_numel(const Shape& shape);

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device device);

// Device memory comes from an allocator registered by the CUDA module (kernels/), so lf_core does not depend on
// CUDA; without one, asking for a CUDA tensor is a clear error.
class DeviceAllocator {
 public:
  virtual ~DeviceAllocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* pointer) = 0;
  // Copies between any two devices (host <-> device, device <-> device); synchronous with respect to the host.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) = 0;
  virtual void zero(void* pointer, size_t bytes) = 0;
};
void register_device_allocator(DeviceAllocator* allocator);
DeviceAllocator* device_allocator();  // nullptr when no CUDA module is registered

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  // Wraps memory owned by `owner` (an mmap, a parent tensor); nothing is copied.
  static Tensor view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner);

  bool defined() const { return data_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int axis) const;  // negative axes count from the end
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::CUDA; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  // Typed host access to f32 data; fails loudly on another dtype or on device memory.
  float* f32();
  const float* f32() const;

  Tensor reshape(const Shape& shape) const;      // same storage, numel must match
  Tensor slice_rows(int64_t begin, int64_t end) const;  // view of rows [begin, end) of axis 0
  Tensor clone() const;
  Tensor to(DType dtype) const;                  // converted copy (or clone when equal); CPU only
  Tensor to(Device device) const;                // copy to another device (same dtype; scales travel too)

  // Quantised (FP8) tensors carry their dequantisation scales: an f32 CPU tensor of one element (per tensor) or of
  // dim(0) elements (per output channel, the row of a [out, in] weight). value = stored * scale. to(F32) applies
  // them; slice_rows slices per-row scales with the rows. nullptr when the tensor is not scaled.
  const Tensor* scales() const { return scales_.get(); }
  Tensor with_scales(const Tensor& scales) const;
  void copy_from(const Tensor& source);          // same shape and dtype, any devices

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
  std::shared_ptr<const Tensor> scales_;
};

// Checks rank and sizes at op entry; -1 in `expected` matches any size.
void check_shape(const Tensor& tensor, const Shape& expected, const char* what);

}  // namespace lf
