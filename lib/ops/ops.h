#pragma once
// The op API the model is written against. Tensors on the CPU run the fp32 reference implementations in
// ops/cpu/; the CUDA path dispatches into kernels/ (arrives with the CUDA backend) and must match these.
// Shapes are checked at entry and errors name the op.
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lf::ops {

// y[n, o] = sum_i x[n, i] * weight[o, i] + bias[o]   (PyTorch Linear layout; bias may be undefined)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// LayerNorm over the last axis; weight/bias may be undefined (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
// RMSNorm over the last axis (the full width: Wan's q/k norm spans all heads), times weight.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);

Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);

// Per-frame modulation: out[t] = x[t] * (1 + scale[f(t)]) + shift[f(t)], f(t) = t / tokens_per_frame.
// x [L, D]; shift, scale [frames, D].
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame);
// x[t] += gate[f(t)] * y[t]   (gate [frames, D]; an undefined gate means 1)
void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame);

// 3D RoPE on x [L, heads, head_dim], in place. Pair j = (x[2j], x[2j+1]); pairs [0, t_pairs) rotate by the
// temporal position, the next h_pairs by the row, the rest by the column. Token i has position
// (frame_positions[i / tokens_per_frame], (i % tokens_per_frame) / grid_width, i % grid_width).
struct RopeGrid {
  int64_t tokens_per_frame;
  int64_t grid_width;
  double theta = 10000.0;
};
void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions);
// Angular frequencies of each axis for a head_dim: Wan splits the d/2 pairs as (d/2 - 2*(d/12)*... ) = 22/21/21
// for d = 128; see rope.cpp for the exact rule.
struct RopeSplit {
  int64_t t_pairs, h_pairs, w_pairs;
};
RopeSplit rope_split(int64_t head_dim);

// softmax(q k^T * scale) v per head. q [Lq, H, D], k/v [Lk, H, D] -> [Lq, H, D]. No mask: the caller passes
// exactly the visible keys.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

// Sinusoidal timestep embedding, [cos(t w_0..), sin(t w_0..)] with w_i = 10000^(-i/half), computed in double.
Tensor timestep_embedding(double timestep, int64_t dim);

// Latents [F, C, H, W] -> patch vectors [F * (H/ph) * (W/pw), C * ph * pw], element order (c, q, r).
Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w);
// Head output [F * gh * gw, ph * pw * C] (element order (q, r, c)) -> [F, C, gh*ph, gw*pw].
Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w);

// Elementwise helpers for the model and pipeline.
Tensor add(const Tensor& a, const Tensor& b);  // same shape
void add_inplace(Tensor& a, const Tensor& b);

}  // namespace lf::ops
