#pragma once
// CPU reference implementations (f32). Called through the dispatching API in ops/ops.h; the semantics of each
// function are documented there.
#include "ops/ops.h"

namespace lf::ops::cpu {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame);
void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame);
void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
Tensor timestep_embedding(double timestep, int64_t dim);
Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w);
Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w);
Tensor axpby(double a, const Tensor& x, double b, const Tensor& y);

}  // namespace lf::ops::cpu
