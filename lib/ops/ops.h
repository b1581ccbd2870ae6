#pragma once
// The op API the model is written against. Tensors on the CPU run the f32 reference implementations in ops/cpu/;
// tensors on the GPU dispatch into kernels/ through ops/cuda/ and must match the references within the precision
// tolerances. Shapes are checked at entry and errors name the op.
//
// Dtypes: the CPU computes and returns f32 everywhere. On the GPU, "activations" (GEMM inputs and outputs,
// attention tensors, the KV cache) are bf16 and the residual stream, modulation tables and latents f32;
// activation_dtype(device) names the former.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/block_geometry.h"
#include "core/tensor.h"

namespace lf::ops {

DType activation_dtype(Device device);

// GPU runtime: number of usable GPUs (0 in a CPU-only build), and one-time setup before the first GPU tensor on
// GPU `device_index` (cudaSetDevice; `--device cuda:N`). One process uses one GPU: a second call must name the same
// index. cuda_device_name() names the selected GPU.
int cuda_device_count();
std::string cuda_device_name();
void initialize_cuda(int device_index = 0);

// Per-op-class GPU time (CUDA events around every GPU op while enabled), e.g. {"attention": ms, "gemm": ms,
// "other": ms}; and device memory statistics. Empty / zero on the CPU.
void set_op_profiling(bool enabled);
std::map<std::string, double> op_profile_ms();
struct DeviceMemoryStats {
  int64_t cuda_malloc_calls = 0;
  size_t peak_bytes = 0;
  size_t reserved_bytes = 0;
};
DeviceMemoryStats device_memory_stats();
// Inside this scope GPU op time is reported under `op_class` (e.g. "self_attention") instead of the op's own class.
class OpClassScope {
 public:
  explicit OpClassScope(const char* op_class);
  ~OpClassScope();
  OpClassScope(const OpClassScope&) = delete;
  OpClassScope& operator=(const OpClassScope&) = delete;
  static const char* current(const char* default_class);

 private:
  const char* previous_;
};
void reset_device_peak_memory();
void synchronize_device();

enum class Activation { None, GeluTanh };
// y[n, o] = act(sum_i x[n, i] * weight[o, i] + bias[o])   (PyTorch Linear layout; bias may be undefined).
// On the CPU the weight may also be bf16 / f16 / f8e4m3 (with Tensor::scales): rows are converted to f32 on the fly,
// same result as weight.to(F32), so mmap'd weights too large for f32 (umT5-XXL) run in place.
// f32_out: on the GPU write f32 (the residual stream, the head) instead of the activation dtype.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation activation = Activation::None,
              bool f32_out = false);

// LayerNorm over the last axis; weight/bias may be undefined (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
// RMSNorm over the last axis (the full width: Wan's q/k norm spans all heads), times weight.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);

Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);

// Per-frame modulation: out[t] = x[t] * (1 + scale[f(t)]) + shift[f(t)], f(t) = t / tokens_per_frame.
// x [L, D]; shift, scale [frames, D].
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame);
// Fused LayerNorm (no affine) + modulate, the pre-norm of self-attention, FFN and head.
Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame,
                           double eps);
// x[t] += gate[f(t)] * y[t]   (x f32; gate [frames, D]; an undefined gate means 1)
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
// rope_apply, and the mean of each block of the roped rows per head: f32 [heads, blocks, head_dim]. Blocks of
// `block` rows from row 0, or (frame_aligned, x a whole number of frames) of `block` rows inside each frame, the
// frame's last one ragged: the sparse planners' pooled queries / key blocks. GPU only (bf16 x): one pass of
// kernels/sparse rope_and_pool, the same bits as rope_apply followed by the planner's pooling (each of which has
// its CPU reference); CPU tensors are refused, the CPU planners pool from the roped tensors themselves.
Tensor rope_apply_pooled(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions, int64_t block,
                         bool frame_aligned);
// Wan's split of the head_dim/2 pairs over (t, h, w): h = w = pairs / 3, t the rest (22/21/21 at d = 128).
struct RopeSplit {
  int64_t t_pairs, h_pairs, w_pairs;
};
RopeSplit rope_split(int64_t head_dim);

// softmax(q k^T * scale) v per head. q [Lq, H, D], k/v [Lk, H, D] -> [Lq, H, D]. No mask: the caller passes
// exactly the visible keys.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// softmax(q k^T * scale + bias[h]) v per head, the softmax in f32 or better: T5 attention (scale 1, the
// relative-position bias on the logits). q [Lq, H, D], k/v [Lk, H, D], bias f32 [H, Lq, Lk] -> [Lq, H, D]. No mask:
// the caller passes exactly the visible keys (umT5 computes the prompt's tokens only).
Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);
// T5's relative-position bias for `tokens` tokens: bias[h, i, j] = table[bucket_of_offset[j - i + tokens - 1], h].
// table f32 [buckets, heads]; bucket_of_offset I32 [2 tokens - 1] (the model's bucketing of each offset j - i), on
// table's device -> f32 [heads, tokens, tokens] there.
Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset);
// a * b elementwise, same shapes (umT5's gated FFN: fc1(h) * gelu(gate(h))). On the GPU bf16 x bf16 -> bf16.
Tensor multiply(const Tensor& a, const Tensor& b);

// A block-sparse mask as the ops read it (lib/attention/block_mask.h builds them): the frame-aligned block geometry
// (core/block_geometry.h) and a CSR over rows r = head * query_blocks + query_block, whose arrays live on
// `device`, which must be q's.
struct BlockSparseMaskView {
  BlockGeometry geometry;
  int64_t heads = 0;
  const int32_t* row_offsets = nullptr;  // [heads * query_blocks + 1], row_offsets[0] = 0
  const int32_t* key_indices = nullptr;  // row r's key blocks at [row_offsets[r], row_offsets[r + 1]), ascending
  Device device = Device::CPU;
};
// attention over exactly the keys of each row's selected key blocks: q [Lq, H, D], k/v [Lk, H, D] with
// Lq = geometry.query_tokens, Lk = geometry.key_tokens(), H = heads. Rows that select no block give zeros; a mask
// listing every block equals attention(). The CSR's structure is the caller's to validate (lf::validate).
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale);
// Kept dense-softmax mass of each head: the probability softmax(q k^T * scale) puts on the selected blocks,
// averaged over the query rows 0, row_stride, 2 row_stride, ... (1 = every row). The CPU accumulates the masses in
// double; the GPU computes fp32 per-row masses, summed here in double in a fixed order (deterministic).
std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride = 1);

// Sinusoidal timestep embedding, [cos(t w_0..), sin(t w_0..)] with w_i = 10000^(-i/half), computed in double.
Tensor timestep_embedding(double timestep, int64_t dim);

// Latents [F, C, H, W] -> patch vectors [F * (H/ph) * (W/pw), C * ph * pw], element order (c, q, r).
Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w);
// Head output [F * gh * gw, ph * pw * C] (element order (q, r, c)) -> [F, C, gh*ph, gw*pw].
Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w);

// A copy in `dtype` (f32 <-> bf16 and fp8 e4m3 (times its Tensor::scales) -> bf16 on the GPU; on the CPU any
// conversion Tensor::to supports).
Tensor convert(const Tensor& x, DType dtype);
// a * x + b * y elementwise (f32, computed in double on the CPU): x0 prediction and re-noising.
Tensor axpby(double a, const Tensor& x, double b, const Tensor& y);
// dst rows [dst_row, dst_row + rows) = src rows [src_row, src_row + rows) (axis 0, same row size, any devices).
void copy_rows(Tensor& dst, int64_t dst_row, const Tensor& src, int64_t src_row, int64_t rows);

// Video decoder ops (Wan VAE, TAEHV). Activations are [T, C, H, W]: frames outermost, so a frame, a run of frames
// or a causal history is a block of rows (copy_rows), and a 1x1 conv that multiplies channels by s (TAEHV TGrow,
// the VAE's time_conv) reshapes into s times the frames without a copy.
//
// What is added to the convolution before its activation: out = act(conv(x) + bias + residual).
struct ConvEpilogue {
  const Tensor* residual = nullptr;  // [T, O, H, W] or null
  bool relu = false;
};
// Causal 3D convolution, stride 1: spatial zero padding kh/2, kw/2; temporally, output frame t sees input frames
// t - (kt - 1) .. t, those before frame 0 taken from `history` [kt - 1, C, H, W] (undefined when kt = 1).
// x [T, C, H, W], weight [O, C, kt, kh, kw] (PyTorch layout), bias [O] or undefined -> [T, O, H, W].
Tensor causal_conv3d(const Tensor& x, const Tensor& history, const Tensor& weight, const Tensor& bias,
                     const ConvEpilogue& epilogue = {});
// Per-frame 2D convolution, stride 1, zero padding kh/2, kw/2: x [T, C, H, W], weight [O, C, kh, kw].
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue = {});
// Nearest-neighbour x2 in both spatial axes: [T, C, H, W] -> [T, C, 2H, 2W].
Tensor upsample_nearest2x(const Tensor& x);
// The Wan VAE's RMS_norm: x / max(||x||_channels, eps) * sqrt(C) * gamma[c] at every pixel, then SiLU if asked.
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, double eps, bool then_silu);
// tanh(x / limit) * limit (TAEHV's soft clamp of its input latents).
Tensor tanh_clamp(const Tensor& x, double limit);
// f32 clamp(x, low, high) * scale + shift, every step in f32, on x's device: the decoders' last step to video in
// [0, 1] (Wan VAE: clamp to [-1, 1], * 0.5 + 0.5; TAEHV: clamp to [0, 1]), done where the frames are.
Tensor clamp_affine(const Tensor& x, float low, float high, float scale, float shift);
// Single-head attention over the pixels of each frame: qkv [T, 3C, H, W] (q, k, v channel blocks, as the VAE's
// 1x1 to_qkv writes them), scale 1/sqrt(C) -> [T, C, H, W].
Tensor spatial_attention(const Tensor& qkv);
// [T, Ca, H, W] ++ [T, Cb, H, W] along channels (TAEHV MemBlock: the input beside the previous frame's input).
Tensor concat_channels(const Tensor& a, const Tensor& b);

}  // namespace lf::ops
