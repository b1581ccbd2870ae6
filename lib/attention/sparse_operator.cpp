#include "attention/sparse_operator.h"

#include "core/error.h"

namespace lf {

ops::BlockSparseMaskView host_mask_view(const BlockMask& mask) {
  LF_CHECK(int64_t(mask.row_offsets.size()) == mask.rows() + 1, "block mask: {} row offsets for {} rows",
           mask.row_offsets.size(), mask.rows());
  ops::BlockSparseMaskView view;
  view.geometry = mask.geometry;
  view.heads = mask.heads;
  view.row_offsets = mask.row_offsets.data();
  view.key_indices = mask.key_indices.data();
  view.device = Device::CPU;
  return view;
}

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockMask& mask, double scale) {
  return ops::block_sparse_attention(q, k, v, host_mask_view(mask), scale);
}

std::vector<double> attention_recall(const Tensor& q, const Tensor& k, const BlockMask& mask, double scale,
                                     int64_t row_stride) {
  return ops::block_sparse_recall(q.is_cuda() ? q.to(Device::CPU) : q, k.is_cuda() ? k.to(Device::CPU) : k,
                                  host_mask_view(mask), scale, row_stride);
}

}  // namespace lf
