#pragma once
// NaN / Inf detection on loaded inputs (weights, noise, text embeddings) and on the latents of each chunk: a
// non-finite value anywhere otherwise ends as an all-black video and exit 0. The scan reads the stored bits, so
// it costs one pass over memory and no conversion.
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace lf {

// Index (row-major) of the first NaN or Inf in a host tensor, or -1. Integer and bool tensors have none.
int64_t find_non_finite(const Tensor& tensor);

// Fails with "<what> has a non-finite value (NaN or Inf) at element i of <dtype> <shape>" when the tensor has one.
void check_finite(const Tensor& tensor, const std::string& what);

}  // namespace lf
