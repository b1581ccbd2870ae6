#pragma once
// The block-sparse operator on a host BlockMask: softmax over exactly the keys of each row's selected blocks.
// Both calls are ops:: (ops.h, CPU reference in ops/cpu/, CUDA in ops/cuda/) given the mask's view; CPU tensors
// only (the GPU path keeps its masks on the device, gpu_sparse_attention.h). A full mask equals dense.
#include <cstdint>
#include <vector>

#include "attention/block_mask.h"
#include "core/tensor.h"
#include "ops/ops.h"

namespace lf {

// The ops' view of a host mask (valid while `mask` lives).
ops::BlockSparseMaskView host_mask_view(const BlockMask& mask);

// q [Lq, H, D], k/v [Lk, H, D] (Lk = mask.geometry.key_tokens()); rows with no blocks give zeros.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockMask& mask, double scale);

// Kept attention mass of each head: the dense softmax probability that falls on the selected blocks, averaged
// over the query rows (every `row_stride`-th row; 1 = exact). q/k are copied to the CPU when on the GPU.
std::vector<double> attention_recall(const Tensor& q, const Tensor& k, const BlockMask& mask, double scale,
                                     int64_t row_stride = 1);

}  // namespace lf
