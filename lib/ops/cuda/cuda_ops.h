#pragma once
// GPU implementations behind ops/ops.h (compiled when the build has CUDA). They call the raw-pointer kernels of
// kernels/ and hold the GPU dtype policy: bf16 activations, f32 residual stream and tables.
#include "ops/ops.h"

namespace lf::ops::cuda {

void initialize();  // registers the device allocator; idempotent
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation activation, bool f32_out);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame,
                           double eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame);
void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions);
Tensor rope_apply_pooled(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions, int64_t block,
                         bool frame_aligned);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);
Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset);
Tensor multiply(const Tensor& a, const Tensor& b);
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale);
std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride);
Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w);
Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w);
Tensor axpby(double a, const Tensor& x, double b, const Tensor& y);
Tensor convert(const Tensor& x, DType dtype);  // f32 <-> bf16 on the device

}  // namespace lf::ops::cuda
