// GPU side of the decoder ops (ops/ops.h): bf16 activations in [T, C, H, W]; conv = im2col + cuBLASLt GEMM +
// epilogue (kernels/conv/conv_ops.h); the attention block = two GEMMs around a row softmax. Weights, gammas and
// biases are f32 GPU tensors (the conv packs its weight to bf16 per call: small next to the activations).
#include "ops/cuda/conv_cuda.h"

#include <algorithm>
#include <cmath>

#include "kernels/conv/conv_cudnn.h"
#include "kernels/conv/conv_ops.h"
#include "core/error.h"
#include "kernels/gemm/gemm.h"
#include "kernels/speed_switches.h"
#include "ops/ops.h"
#include "ops/cuda/op_timer.h"

namespace lf::ops::cuda {

namespace {

// Largest im2col tile: 256 MiB of bf16 columns (the decoder's memory bound; 480x832 at K = 96 * 27 is 2 GB whole).
constexpr int64_t kColumnBudgetElements = int64_t(128) << 20;

Tensor as_bf16(const Tensor& x, const char* op) {
  LF_CHECK(x.is_cuda(), "{}: expected a GPU tensor", op);
  return x.dtype() == DType::BF16 ? x : convert(x, DType::BF16);
}
Tensor as_f32(const Tensor& x, const char* op) {
  LF_CHECK(x.is_cuda(), "{}: expected a GPU tensor", op);
  return x.dtype() == DType::F32 ? x : convert(x, DType::F32);
}
uint16_t* bf16(Tensor& t) { return static_cast<uint16_t*>(t.raw()); }
const uint16_t* bf16(const Tensor& t) { return static_cast<const uint16_t*>(t.raw()); }
float* f32(Tensor& t) { return static_cast<float*>(t.raw()); }
const float* f32(const Tensor& t) { return static_cast<const float*>(t.raw()); }

// LF_CONV (kernels/speed_switches.h): cuDNN where it can run the shape, unless im2col is asked for.
bool conv_through_cudnn(const gpu::CudnnConvShape& shape) {
  const gpu::ConvMethod method = gpu::speed_switches().conv_method;
  if (method == gpu::ConvMethod::Im2col) return false;
  std::string why;
  const bool supported = gpu::cudnn_conv_supported(shape, &why);
  LF_CHECK(supported || method == gpu::ConvMethod::Auto, "LF_CONV=cudnn: {}", why);
  return supported;
}

// out = conv over [history; x] by cuDNN (kernels/conv/conv_cudnn.h), then bias / residual / ReLU in one pass.
Tensor conv_cudnn(const gpu::CudnnConvShape& shape, const Tensor& x, const Tensor& history, const Tensor& weight,
                  const Tensor& bias, const Tensor& residual, bool relu) {
  Tensor frames_in = x;
  if (shape.kt > 1) {
    // The tap windows of consecutive output frames must be consecutive in memory: history, then the input.
    frames_in = Tensor::empty({shape.kt - 1 + shape.frames, shape.channels, shape.height, shape.width}, DType::BF16,
                              Device::CUDA);
    ops::copy_rows(frames_in, 0, history, 0, shape.kt - 1);
    ops::copy_rows(frames_in, shape.kt - 1, x, 0, shape.frames);
  }
  Tensor packed = Tensor::empty({shape.outs, shape.kt * shape.channels, shape.kh, shape.kw}, DType::BF16, Device::CUDA);
  gpu::conv_pack_weight_time_major(f32(weight), shape.outs, shape.channels, shape.kt, shape.kh, shape.kw, bf16(packed),
                                   nullptr);
  const size_t workspace_bytes = gpu::cudnn_conv_workspace(shape);
  Tensor workspace = workspace_bytes > 0 ? Tensor::empty({int64_t(workspace_bytes)}, DType::U8, Device::CUDA) : Tensor();
  Tensor out = Tensor::empty({shape.frames, shape.outs, shape.height, shape.width}, DType::BF16, Device::CUDA);
  gpu::cudnn_conv(shape, bf16(frames_in), bf16(packed), bf16(out), workspace.defined() ? workspace.raw() : nullptr,
                  workspace_bytes, nullptr);
  gpu::conv_bias_residual(bf16(out), shape.frames, shape.outs, shape.height * shape.width,
                          bias.defined() ? f32(bias) : nullptr, residual.defined() ? bf16(residual) : nullptr, relu,
                          nullptr);
  return out;
}

}  // namespace

Tensor causal_conv3d(const Tensor& x_in, const Tensor& history_in, const Tensor& weight_in, const Tensor& bias_in,
                     const ConvEpilogue& epilogue) {
  const char* op = "causal_conv3d";
  LF_CHECK(x_in.rank() == 4 && weight_in.rank() == 5 && weight_in.dim(1) == x_in.dim(1),
           "{}: weight {} does not fit input {}", op, shape_str(weight_in.shape()), shape_str(x_in.shape()));
  const Tensor x = as_bf16(x_in, op), weight = as_f32(weight_in, op);
  const int64_t frames = x.dim(0), channels = x.dim(1), height = x.dim(2), width = x.dim(3);
  const int64_t outs = weight.dim(0), kt = weight.dim(2), kh = weight.dim(3), kw = weight.dim(4);
  LF_CHECK(kh % 2 == 1 && kw % 2 == 1, "{}: spatial kernel {}x{} must be odd", op, kh, kw);
  Tensor history;
  if (kt > 1) {
    check_shape(history_in, {kt - 1, channels, height, width}, "causal_conv3d history");
    history = as_bf16(history_in, op);
  }
  Tensor bias;
  if (bias_in.defined() && bias_in.numel() > 0) {
    LF_CHECK(bias_in.numel() == outs, "{}: bias {} for {} outputs", op, shape_str(bias_in.shape()), outs);
    bias = as_f32(bias_in, op);
  }
  Tensor residual;
  if (epilogue.residual) {
    check_shape(*epilogue.residual, {frames, outs, height, width}, "causal_conv3d residual");
    residual = as_bf16(*epilogue.residual, op);
  }
  const gpu::ScopedOpTimer timed(OpClassScope::current("conv"));
  gpu::CudnnConvShape shape;
  shape.frames = frames, shape.channels = channels, shape.height = height, shape.width = width;
  shape.outs = outs, shape.kt = kt, shape.kh = kh, shape.kw = kw;
  if (conv_through_cudnn(shape)) return conv_cudnn(shape, x, history, weight, bias, residual, epilogue.relu);
  const int64_t taps = channels * kt * kh * kw, padded = gpu::conv_padded_taps(taps), plane = height * width;
  Tensor packed = Tensor::empty({outs, padded}, DType::BF16, Device::CUDA);
  gpu::conv_pack_weight(f32(weight), outs, taps, bf16(packed), nullptr);
  // Tile of output pixels: a multiple of 8 so every GEMM row (bf16 columns, fp32 accumulators) stays 16-byte aligned.
  const int64_t tile = std::min((plane + 7) / 8 * 8, std::max<int64_t>(256, kColumnBudgetElements / padded / 8 * 8));
  Tensor columns = Tensor::empty({tile, padded}, DType::BF16, Device::CUDA);
  Tensor acc = Tensor::empty({outs, tile}, DType::F32, Device::CUDA);
  Tensor out = Tensor::empty({frames, outs, height, width}, DType::BF16, Device::CUDA);
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t first = 0; first < plane; first += tile) {
      const int64_t count = std::min(tile, plane - first);
      gpu::Im2colArgs im2col;
      im2col.input = bf16(x);
      im2col.history = history.defined() ? bf16(history) : nullptr;
      im2col.channels = channels, im2col.height = height, im2col.width = width;
      im2col.kt = kt, im2col.kh = kh, im2col.kw = kw;
      im2col.frame = t, im2col.first_pixel = first, im2col.pixels = count;
      im2col.columns = bf16(columns);
      gpu::conv_im2col(im2col, nullptr);
      gpu::GemmArgs gemm;  // acc[o, p] = sum_k packed[o, k] * columns[p, k]
      gemm.x = bf16(packed);
      gemm.weight = bf16(columns);
      gemm.y = f32(acc);
      gemm.y_type = gpu::GemmType::F32;
      gemm.m = outs, gemm.n = count, gemm.k = padded;
      gemm.y_row_stride = tile;
      gemm.name = "conv";
      gpu::gemm_bf16(gemm);
      gpu::conv_epilogue(f32(acc), tile, outs, count, bias.defined() ? f32(bias) : nullptr,
                         residual.defined() ? bf16(residual) + t * outs * plane : nullptr, first, plane, epilogue.relu,
                         bf16(out) + t * outs * plane, nullptr);
    }
  return out;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue) {
  LF_CHECK(weight.rank() == 4, "conv2d: weight must be [O, C, kh, kw], found {}", shape_str(weight.shape()));
  return cuda::causal_conv3d(
      x, Tensor(), weight.reshape({weight.dim(0), weight.dim(1), 1, weight.dim(2), weight.dim(3)}), bias, epilogue);
}

Tensor upsample_nearest2x(const Tensor& x_in) {
  LF_CHECK(x_in.rank() == 4, "upsample_nearest2x: input must be [T, C, H, W], found {}", shape_str(x_in.shape()));
  const Tensor x = as_bf16(x_in, "upsample_nearest2x");
  Tensor out = Tensor::empty({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)}, DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::upsample_nearest2x(bf16(x), x.dim(0) * x.dim(1), x.dim(2), x.dim(3), bf16(out), nullptr);
  return out;
}

Tensor channel_rms_norm(const Tensor& x_in, const Tensor& gamma_in, double eps, bool then_silu) {
  LF_CHECK(x_in.rank() == 4 && gamma_in.numel() == x_in.dim(1), "channel_rms_norm: input {} with gamma {}",
           shape_str(x_in.shape()), shape_str(gamma_in.shape()));
  const Tensor x = as_bf16(x_in, "channel_rms_norm"), gamma = as_f32(gamma_in, "channel_rms_norm");
  Tensor out = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));
  gpu::channel_rms_norm(bf16(x), x.dim(0), x.dim(1), x.dim(2) * x.dim(3), f32(gamma), eps, then_silu, bf16(out),
                        nullptr);
  return out;
}

Tensor tanh_clamp(const Tensor& x_in, double limit) {
  const Tensor x = as_f32(x_in, "tanh_clamp");
  Tensor out = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::tanh_clamp(f32(x), x.numel(), limit, bf16(out), nullptr);
  return out;
}

Tensor clamp_affine(const Tensor& x_in, float low, float high, float scale, float shift) {
  const Tensor x = as_bf16(x_in, "clamp_affine");  // the decoders' activations are bf16 here
  Tensor out = Tensor::empty(x.shape(), DType::F32, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::clamp_affine(bf16(x), x.numel(), low, high, scale, shift, f32(out), nullptr);
  return out;
}

Tensor spatial_attention(const Tensor& qkv_in) {
  LF_CHECK(qkv_in.rank() == 4 && qkv_in.dim(1) % 3 == 0, "spatial_attention: qkv must be [T, 3C, H, W], found {}",
           shape_str(qkv_in.shape()));
  const Tensor qkv = as_bf16(qkv_in, "spatial_attention");
  const int64_t frames = qkv.dim(0), channels = qkv.dim(1) / 3, pixels = qkv.dim(2) * qkv.dim(3);
  LF_CHECK(channels % 8 == 0, "spatial_attention on the GPU: {} channels, need a multiple of 8 (16-byte GEMM rows)",
           channels);
  // Keys padded to a multiple of 8: P's padding columns are zero, so the padded values never count.
  const int64_t keys = (pixels + 7) / 8 * 8;
  Tensor q = Tensor::empty({pixels, channels}, DType::BF16, Device::CUDA);
  Tensor k = Tensor::empty({pixels, channels}, DType::BF16, Device::CUDA);
  Tensor v = Tensor::empty({channels, keys}, DType::BF16, Device::CUDA);
  const Tensor key_padding =
      keys > pixels ? Tensor::zeros({channels, keys - pixels}, DType::BF16, Device::CUDA) : Tensor();
  Tensor scores = Tensor::empty({pixels, keys}, DType::F32, Device::CUDA);
  Tensor probabilities = Tensor::empty({pixels, keys}, DType::BF16, Device::CUDA);
  Tensor out = Tensor::empty({frames, channels, qkv.dim(2), qkv.dim(3)}, DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("attention"));
  for (int64_t t = 0; t < frames; ++t) {
    const uint16_t* planes = bf16(qkv) + t * 3 * channels * pixels;
    gpu::transpose_bf16(planes, channels, pixels, bf16(q), nullptr);
    gpu::transpose_bf16(planes + channels * pixels, channels, pixels, bf16(k), nullptr);
    // V stays channel-major: O^T [C, L] = V [C, L] P^T, straight into the output frame; rows padded to `keys`.
    gpu::concat_frames_rows(planes + 2 * channels * pixels, pixels, key_padding.defined() ? bf16(key_padding) : nullptr,
                            keys - pixels, channels, bf16(v), nullptr);
    gpu::GemmArgs scores_gemm;  // S[i, j] = q_i . k_j
    scores_gemm.x = bf16(q);
    scores_gemm.weight = bf16(k);
    scores_gemm.y = f32(scores);
    scores_gemm.y_type = gpu::GemmType::F32;
    scores_gemm.m = pixels, scores_gemm.n = pixels, scores_gemm.k = channels;
    scores_gemm.y_row_stride = keys;
    scores_gemm.name = "vae_attention_scores";
    gpu::gemm_bf16(scores_gemm);
    gpu::softmax_rows(f32(scores), pixels, pixels, keys, 1.0 / std::sqrt(double(channels)), bf16(probabilities),
                      nullptr);
    gpu::GemmArgs values_gemm;  // O^T[c, i] = sum_j V[c, j] P[i, j]
    values_gemm.x = bf16(v);
    values_gemm.weight = bf16(probabilities);
    values_gemm.y = bf16(out) + t * channels * pixels;
    values_gemm.y_type = gpu::GemmType::BF16;
    values_gemm.m = channels, values_gemm.n = pixels, values_gemm.k = keys;
    values_gemm.name = "vae_attention_values";
    gpu::gemm_bf16(values_gemm);
  }
  return out;
}

Tensor concat_channels(const Tensor& a_in, const Tensor& b_in) {
  LF_CHECK(a_in.rank() == 4 && b_in.rank() == 4 && a_in.dim(0) == b_in.dim(0) && a_in.dim(2) == b_in.dim(2) &&
               a_in.dim(3) == b_in.dim(3),
           "concat_channels: {} and {} differ outside the channel axis", shape_str(a_in.shape()),
           shape_str(b_in.shape()));
  const Tensor a = as_bf16(a_in, "concat_channels"), b = as_bf16(b_in, "concat_channels");
  Tensor out = Tensor::empty({a.dim(0), a.dim(1) + b.dim(1), a.dim(2), a.dim(3)}, DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::concat_frames_rows(bf16(a), a.numel() / a.dim(0), bf16(b), b.numel() / b.dim(0), a.dim(0), bf16(out), nullptr);
  return out;
}

}  // namespace lf::ops::cuda
