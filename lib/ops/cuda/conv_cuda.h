#pragma once
// GPU implementations of the decoder ops of ops/ops.h (lib/ops/cuda/conv_cuda.cpp over kernels/conv/ and the
// cuBLASLt GEMM). Activations bf16 (f32 inputs are converted), weights / gammas / biases f32.
#include "ops/ops.h"

namespace lf::ops::cuda {

Tensor causal_conv3d(const Tensor& x, const Tensor& history, const Tensor& weight, const Tensor& bias,
                     const ConvEpilogue& epilogue);
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue);
Tensor upsample_nearest2x(const Tensor& x);
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, double eps, bool then_silu);
Tensor tanh_clamp(const Tensor& x, double limit);
Tensor clamp_affine(const Tensor& x, float low, float high, float scale, float shift);
Tensor spatial_attention(const Tensor& qkv);
Tensor concat_channels(const Tensor& a, const Tensor& b);

}  // namespace lf::ops::cuda
