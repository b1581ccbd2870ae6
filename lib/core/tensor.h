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

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(const Shape& shape, DType dtype = DType::F32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  // Wraps memory owned by `owner` (an mmap, a parent tensor); nothing is copied.
  static Tensor view_of(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner);

  bool defined() const { return data_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int axis) const;  // negative axes count from the end
  int rank() const { return int(shape_.size()); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return Device::CPU; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  // Typed access to f32 data; fails loudly on another dtype so a bf16 buffer is never read as floats.
  float* f32();
  const float* f32() const;

  Tensor reshape(const Shape& shape) const;      // same storage, numel must match
  Tensor slice_rows(int64_t begin, int64_t end) const;  // view of rows [begin, end) of axis 0
  Tensor clone() const;
  Tensor to(DType dtype) const;                  // converted copy (or clone when equal)

 private:
  Shape shape_;
  DType dtype_ = DType::F32;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

// Checks rank and sizes at op entry; -1 in `expected` matches any size.
void check_shape(const Tensor& tensor, const Shape& expected, const char* what);

}  // namespace lf
