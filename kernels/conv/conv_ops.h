#pragma once
// GPU kernels of the video decoders (Wan VAE, TAEHV) on raw device pointers; lib/ops/cuda/conv_cuda.cpp composes
// them with the cuBLASLt GEMM (gemm/gemm.h) into the ops of lib/ops/ops.h. Activations are bf16 (uint16_t bits)
// in the [T, C, H, W] layout; statistics and accumulations fp32; one rounding to bf16 per output.
//
// Convolution = im2col of a tile of output pixels ([pixels, K_padded] bf16, K in the weight's (c, dt, dy, dx)
// order, padded with zeros to a multiple of 8 so every GEMM row is 16-byte aligned) + GEMM against the packed
// weight [O, K_padded] (y = W col^T lands channel-major, [O, pixels], fp32) + an epilogue kernel (bias, residual,
// ReLU, bf16). docs/decoders.md says why this route.
#include <cstdint>

namespace lf::gpu {

using Stream = void*;

inline int64_t conv_padded_taps(int64_t taps) { return (taps + 7) / 8 * 8; }

// weight [O, K] fp32 -> packed bf16 [O, K_padded] (zero tail).
void conv_pack_weight(const float* weight, int64_t outs, int64_t taps, uint16_t* packed, Stream stream);

// weight [O, C, kt, kh, kw] fp32 -> bf16 [O, kt, C, kh, kw]: the 2D filter of the cuDNN path (conv_cudnn.h).
void conv_pack_weight_time_major(const float* weight, int64_t outs, int64_t channels, int64_t kt, int64_t kh,
                                 int64_t kw, uint16_t* packed, Stream stream);

// The cuDNN path's epilogue, in place: y = bf16(relu?(y + bias[o] + residual)) over y [frames, outs, plane] bf16;
// bias fp32 [outs] and residual bf16 (y's shape) may be null. A no-op when there is nothing to add.
void conv_bias_residual(uint16_t* y, int64_t frames, int64_t outs, int64_t plane, const float* bias,
                        const uint16_t* residual, bool relu, Stream stream);

struct Im2colArgs {
  const uint16_t* input = nullptr;    // [T, C, H, W]
  const uint16_t* history = nullptr;  // [kt - 1, C, H, W], or null when kt = 1
  int64_t channels = 0, height = 0, width = 0;
  int64_t kt = 1, kh = 1, kw = 1;
  int64_t frame = 0;                  // output frame t: taps read frames t + dt - (kt - 1)
  int64_t first_pixel = 0, pixels = 0;
  uint16_t* columns = nullptr;        // [pixels, K_padded]
};
void conv_im2col(const Im2colArgs& args, Stream stream);

// out[o, first + p] = bf16(relu?(acc[o, p] + bias[o] + residual[o, first + p])) for p < pixels; rows of out and
// residual are `plane` apart (the frame's H * W), rows of acc `acc_stride`. bias / residual may be null.
void conv_epilogue(const float* acc, int64_t acc_stride, int64_t outs, int64_t pixels, const float* bias,
                   const uint16_t* residual, int64_t first_pixel, int64_t plane, bool relu, uint16_t* out,
                   Stream stream);

// [planes, H, W] -> [planes, 2H, 2W], nearest.
void upsample_nearest2x(const uint16_t* x, int64_t planes, int64_t height, int64_t width, uint16_t* out,
                        Stream stream);

// Per frame and pixel: x / max(||x||_C, eps) * sqrt(C) * gamma[c], then SiLU if asked. x, out [T, C, P].
void channel_rms_norm(const uint16_t* x, int64_t frames, int64_t channels, int64_t pixels, const float* gamma,
                      double eps, bool then_silu, uint16_t* out, Stream stream);

// out[i] = fminf(fmaxf(x[i], low), high) * scale + shift in fp32 (no FMA contraction: the CPU's clamp, multiply,
// add), x bf16 -> out fp32.
void clamp_affine(const uint16_t* x, int64_t count, float low, float high, float scale, float shift, float* out,
                  Stream stream);

// out = bf16(tanh(x / limit) * limit), x fp32.
void tanh_clamp(const float* x, int64_t count, double limit, uint16_t* out, Stream stream);

// out[p, c] = x[c, p] for a [rows, cols] bf16 matrix (channel planes -> token rows).
void transpose_bf16(const uint16_t* x, int64_t rows, int64_t cols, uint16_t* out, Stream stream);

// Row softmax of scores * scale: scores fp32 [rows, cols] -> probabilities bf16; both with rows `stride` apart,
// and out's columns [cols, stride) set to zero (padding that the next GEMM reads as k).
void softmax_rows(const float* scores, int64_t rows, int64_t cols, int64_t stride, double scale, uint16_t* out,
                  Stream stream);

// out[t] = [a[t], b[t]] along channels: a [T, ca_elems], b [T, cb_elems] per frame (elements, any layout inside).
void concat_frames_rows(const uint16_t* a, int64_t a_elems, const uint16_t* b, int64_t b_elems, int64_t frames,
                        uint16_t* out, Stream stream);

}  // namespace lf::gpu
