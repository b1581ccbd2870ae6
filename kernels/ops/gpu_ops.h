#pragma once
// GPU ops of the Wan DiT other than attention and GEMMs (see gemm/gemm.h), on raw device pointers.
//
// Plain C++ types only, so files compiled by g++ can include this: pointers are device pointers, bf16 values are
// stored as uint16_t (bit pattern of __nv_bfloat16), `stream` is a cudaStream_t (nullptr = legacy default stream).
// Every op is asynchronous on `stream`; errors (bad sizes, launch failures) throw lf::Error naming the op.
//
// Precision policy (docs/gpu-ops.md): the residual stream, modulation tables, norm statistics and RoPE angles are
// fp32 (angles reduced in fp64); outputs that feed a GEMM are bf16, rounded once, to nearest even. Each op matches
// its CPU reference in lib/ops/cpu/ up to that final rounding.
#include <cstddef>
#include <cstdint>

namespace lf::gpu {

using Stream = void*;

// A per-frame table of fp32 vectors: frame f's vector starts at data + f * frame_stride (width floats). Lets the
// norms and residuals read one slot of the [frames, 6, dim] modulation table in place, without a copy.
struct FrameRows {
  const float* data = nullptr;
  int64_t frame_stride = 0;
};
// A contiguous [frames, width] table.
inline FrameRows frame_rows(const float* table, int64_t width) { return {table, width}; }
// Slot `slot` of a [frames, slots, width] table (the block's modulation table has 6 slots: shift1, scale1, gate1,
// shift2, scale2, gate2; the head's has 2: shift, scale).
inline FrameRows table_slot(const float* table, int64_t slots, int64_t width, int64_t slot) {
  return {table + slot * width, slots * width};
}

// ---- modulation -------------------------------------------------------------------------------------------------

// table[f, s, i] = base[s, i] + per_frame[f * frame_stride + s * slot_stride + i], fp32, [frames, slots, width].
// Block: base = block.modulation [6, dim], per_frame = e0 [frames, 6, dim] (frame_stride 6*dim, slot_stride dim).
// Head: base = head.modulation [2, dim], per_frame = e [frames, dim] (frame_stride dim, slot_stride 0: both slots
// add the same e).
void modulation_table(const float* base, const float* per_frame, int64_t frame_stride, int64_t slot_stride,
                      int64_t frames, int64_t slots, int64_t width, float* table, Stream stream);

// ---- norms (one warp per row; statistics in fp32 from the fp32 or bf16 input) ------------------------------------

// out[t] = bf16( LN(x[t]) * (1 + scale[f]) + shift[f] ),  f = t / tokens_per_frame, LN without affine.
// x fp32 [tokens, width] (the residual stream); out bf16 [tokens, width] (input of the next GEMM).
void layer_norm_modulate(const float* x, int64_t tokens, int64_t width, FrameRows shift, FrameRows scale,
                         int64_t tokens_per_frame, double eps, uint16_t* out, Stream stream);

// out[t] = bf16( LN(x[t]) * weight + bias ); weight and bias fp32 [width], either may be nullptr (no affine).
void layer_norm_affine(const float* x, int64_t tokens, int64_t width, const float* weight, const float* bias,
                       double eps, uint16_t* out, Stream stream);

// out[r] = bf16( x[r] * rsqrt(mean(x[r]^2) + eps) * weight ) over the full width (Wan's q/k norm spans all heads).
// x bf16 (a GEMM output); rows may be strided (x_row_stride, out_row_stride in elements; 0 = width) so q and k can
// be read out of a fused [tokens, 3*dim] qkv projection and written anywhere (a KV-cache slot).
void rms_norm(const uint16_t* x, int64_t x_row_stride, int64_t rows, int64_t width, const float* weight, double eps,
              uint16_t* out, int64_t out_row_stride, Stream stream);

// ---- RoPE ---------------------------------------------------------------------------------------------------------

// Wan's 3D RoPE (ops::rope_apply): x is [tokens, heads, head_dim] (row stride in elements, 0 = heads*head_dim);
// pair j = (x[2j], x[2j+1]) of each head; the first t_pairs pairs rotate by the frame position, the next h_pairs by
// the row, the rest by the column (ops::rope_split), an axis with n pairs having w_j = theta^(-j/n). Token t sits
// in frame t / tokens_per_frame, whose temporal position is frame_positions[t / tokens_per_frame] (a HOST array of
// frame_count entries, copied into the launch: no device buffer needed); row (t % tpf) / grid_width, column
// t % grid_width. Angles: position * w_j in fp64, reduced to [-pi, pi] in fp64, cos/sin in fp32.
struct RopeLayout {
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t tokens_per_frame = 0;
  int64_t grid_width = 0;
  double theta = 10000.0;
};
void rope_apply(uint16_t* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                const int64_t* frame_positions, int64_t frame_count, Stream stream);
// fp32 variant (same rule, no rounding to bf16): for references and fp32 caches.
void rope_apply_f32(float* x, int64_t row_stride, int64_t tokens, const RopeLayout& layout,
                    const int64_t* frame_positions, int64_t frame_count, Stream stream);

// rms_norm over the full row (heads * head_dim) followed by rope_apply, fused: one pass, one bf16 rounding. The
// self-attention q and k path (absolute positions): out can be the KV-cache slot.
void rms_norm_rope(const uint16_t* x, int64_t x_row_stride, int64_t tokens, const float* weight, double eps,
                   const RopeLayout& layout, const int64_t* frame_positions, int64_t frame_count, uint16_t* out,
                   int64_t out_row_stride, Stream stream);

// ---- residuals, activations, conversions --------------------------------------------------------------------------

// x[t, i] += gate[f][i] * y[t, i]  (fp32 residual x [tokens, width]; gate.data == nullptr means gate 1).
void gated_residual(float* x, const uint16_t* y, int64_t tokens, int64_t width, FrameRows gate,
                    int64_t tokens_per_frame, Stream stream);
void gated_residual_f32(float* x, const float* y, int64_t tokens, int64_t width, FrameRows gate,
                        int64_t tokens_per_frame, Stream stream);

// x[r, i] += row[i] (fp32): a bias added outside a GEMM.
void add_row_vector(float* x, int64_t rows, int64_t width, const float* row, Stream stream);

// In place GELU, tanh approximation, computed in fp32 (only where the GEMM's GELU epilogue is not used).
void gelu_tanh_inplace(uint16_t* x, int64_t count, Stream stream);
// out = bf16(silu(x)): the time MLP's activation, whose output feeds a GEMM.
void silu_to_bf16(const float* x, int64_t count, uint16_t* out, Stream stream);

void convert_f32_to_bf16(const float* x, int64_t count, uint16_t* out, Stream stream);
void convert_bf16_to_f32(const uint16_t* x, int64_t count, float* out, Stream stream);

// ---- layout -------------------------------------------------------------------------------------------------------

// latents fp32 [frames, channels, height, width] -> tokens bf16 [frames * gh * gw, channels * patch_h * patch_w],
// element order (c, q, r) as ops::patchify (the patch-embedding GEMM's input).
void patchify(const float* latents, int64_t frames, int64_t channels, int64_t height, int64_t width, int64_t patch_h,
              int64_t patch_w, uint16_t* tokens, Stream stream);
// head output fp32 [frames * gh * gw, patch_h * patch_w * channels], order (q, r, c) -> latents fp32
// [frames, channels, gh * patch_h, gw * patch_w], as ops::unpatchify.
void unpatchify(const float* tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                int64_t patch_h, int64_t patch_w, float* latents, Stream stream);

// Copies `rows` rows of row_bytes each between strided buffers (device to device): KV-cache slot writes, slicing v
// out of a fused qkv output. Strides are in bytes.
void copy_rows(void* dst, int64_t dst_stride_bytes, const void* src, int64_t src_stride_bytes, int64_t row_bytes,
               int64_t rows, Stream stream);

}  // namespace lf::gpu
