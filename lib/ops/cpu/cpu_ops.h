#pragma once
// CPU reference implementations (f32). Called through the dispatching API in ops/ops.h; the semantics of each
// function are documented there.
#include <memory>
#include <span>
#include <vector>

#include "ops/ops.h"

namespace lf::ops::cpu {

// Row-major matrices inside larger buffers: `stride` floats from one row to the next.
struct ConstMatrixView {
  const float* data;
  int64_t rows, cols, stride;
};
struct MatrixView {
  float* data;
  int64_t rows, cols, stride;
};
// c = a b^T (a [m, k], b [n, k], c [m, n]) on the calling thread; callers parallelise over blocks of c. Each
// element of c is one dot product summed in an order that depends on k alone, so however the caller blocks c,
// and whichever thread computes a block, the bits are the same.
void matmul_nt(const ConstMatrixView& a, const ConstMatrixView& b, const MatrixView& c);

// Attention building blocks shared by dense attention and the block-sparse operator (attention/).
//
// K and V of one attention call as the tile loop reads them: K in place (head h's keys are rows H * D floats
// apart) and V transposed per head, [H][D][Lk], so that O = P V is a matmul_nt along the key axis too.
class AttentionKV {
 public:
  // k, v [Lk, H, D] f32; k must outlive this object.
  AttentionKV(const Tensor& k, const Tensor& v);
  int64_t keys() const { return keys_; }
  int64_t head_dim() const { return head_dim_; }
  ConstMatrixView head_keys(int64_t head) const {
    return {k_ + head * head_dim_, keys_, head_dim_, heads_ * head_dim_};
  }
  ConstMatrixView head_values_t(int64_t head) const {
    return {values_t_.get() + head * head_dim_ * keys_, head_dim_, keys_, keys_};
  }

 private:
  const float* k_;
  int64_t keys_, heads_, head_dim_;
  std::unique_ptr<float[]> values_t_;
};

struct KeyRange {
  int64_t first, length;
};
// Query rows of one head: row r is q[r * stride, + head_dim) and its output goes to out[r * stride, + head_dim).
struct HeadRows {
  const float* q;
  float* out;
  int64_t rows, stride, head;
};
// Per-thread buffers for attend_rows, grown on first use and reused across calls.
struct AttentionScratch {
  std::vector<float> scores, partial_out, row_max;
  std::vector<double> out_sum, row_sum;
};
// out = softmax(q K^T * scale) V over the keys of `ranges` (in order) of rows.head, within fp32 rounding of exact:
// fp32 scores and probabilities, a double normaliser and double accumulation of per-key-chunk partial outputs.
// Rows with no keys get zeros. Deterministic: a row's bits depend only on its inputs and the ranges, not on the
// thread or on how the caller groups rows.
void attend_rows(const HeadRows& rows, const AttentionKV& kv, std::span<const KeyRange> ranges, double scale,
                 AttentionScratch& scratch);

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
Tensor gelu_tanh(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame);
void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame);
void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions);
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale);
Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset);
Tensor multiply(const Tensor& a, const Tensor& b);
Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale);
std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride);
Tensor timestep_embedding(double timestep, int64_t dim);
Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w);
Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w);
Tensor axpby(double a, const Tensor& x, double b, const Tensor& y);

Tensor causal_conv3d(const Tensor& x, const Tensor& history, const Tensor& weight, const Tensor& bias,
                     const ConvEpilogue& epilogue);
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue);
Tensor upsample_nearest2x(const Tensor& x);
Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, double eps, bool then_silu);
Tensor tanh_clamp(const Tensor& x, double limit);
Tensor clamp_affine(const Tensor& x, float low, float high, float scale, float shift);
Tensor spatial_attention(const Tensor& qkv);
Tensor concat_channels(const Tensor& a, const Tensor& b);

}  // namespace lf::ops::cpu
