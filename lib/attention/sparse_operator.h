#pragma once
// The block-sparse attention operator: softmax over exactly the keys of each row's selected blocks. The CPU
// version is the reference; GPU tensors go to the block-sparse flash kernel (kernels/). A full mask equals dense.
#include "attention/block_mask.h"
#include "core/tensor.h"

namespace lf {

// q [Lq, H, D], k/v [Lk, H, D] (Lk = mask.geometry.key_tokens()); rows with no blocks give zeros.
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockMask& mask, double scale);

// Kept attention mass of each head: the dense softmax probability that falls on the selected blocks, averaged
// over the query rows (every `row_stride`-th row; 1 = exact). q/k on the CPU.
std::vector<double> attention_recall(const Tensor& q, const Tensor& k, const BlockMask& mask, double scale,
                                     int64_t row_stride = 1);

}  // namespace lf
