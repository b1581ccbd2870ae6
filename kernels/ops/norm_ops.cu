// LayerNorm (+ modulation or affine), RMSNorm and RMSNorm + RoPE: one warp per row, bf16 output.
//
// A row of the DiT is 1536 wide: a warp holds it in registers (12 float4 per lane), so the row is read from memory
// once, the statistics are two warp reductions (mean, then the centred sum of squares: no cancellation), and the
// normalised values go straight through the op's per-element transform to a single bf16 rounding. Rows too wide
// for the register budget take a three-pass path over global memory (the row stays in L1/L2 between passes).
#include "kernels/cuda_check.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/gpu_ops.h"
#include "kernels/ops/rope_params.cuh"

namespace lf::gpu {

namespace {

using namespace detail;

// 4 rows per block: the DiT's 4680 rows make ~9 blocks per SM, so the last wave is evenly spread.
constexpr int kRowThreads = 128;
constexpr int kRowsPerBlock = kRowThreads / kWarpSize;

struct NoShared {};

// ---- per-element transforms applied after normalisation -------------------------------------------------------
// Each op says whether the norm subtracts the mean (LayerNorm) or not (RMSNorm), prepares per-row state once per
// lane (row(): no 64-bit divisions, RoPE angles reused across chunks) and transforms kVec consecutive normalised
// values at column `col`.

struct ModulateOp {
  static constexpr bool kCentered = true;
  static constexpr bool kNeedsPairs = false;
  using Shared = NoShared;
  struct Row {
    const float* shift;
    const float* scale;
  };
  FrameRows shift, scale;
  int64_t tokens_per_frame;

  __device__ void setup(Shared&) const {}
  template <int kVec>
  __device__ Row row(int64_t token, int, const Shared&) const {
    const int64_t frame = token / tokens_per_frame;
    return {shift.data + frame * shift.frame_stride, scale.data + frame * scale.frame_stride};
  }
  template <int kVec>
  __device__ void apply(float (&v)[kVec], const Row& row, int col, const Shared&) const {
    float sh[kVec], sc[kVec];
    load_vec<kVec>(row.shift + col, sh);
    load_vec<kVec>(row.scale + col, sc);
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = v[k] * (1.0f + sc[k]) + sh[k];
  }
};

struct AffineOp {
  static constexpr bool kCentered = true;
  static constexpr bool kNeedsPairs = false;
  using Shared = NoShared;
  struct Row {};
  const float* weight;  // either may be nullptr
  const float* bias;

  __device__ void setup(Shared&) const {}
  template <int kVec>
  __device__ Row row(int64_t, int, const Shared&) const {
    return {};
  }
  template <int kVec>
  __device__ void apply(float (&v)[kVec], const Row&, int col, const Shared&) const {
    if (weight != nullptr) {
      float w[kVec];
      load_vec<kVec>(weight + col, w);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] *= w[k];
    }
    if (bias != nullptr) {
      float b[kVec];
      load_vec<kVec>(bias + col, b);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] += b[k];
    }
  }
};

struct RmsOp {
  static constexpr bool kCentered = false;
  static constexpr bool kNeedsPairs = false;
  using Shared = NoShared;
  struct Row {};
  const float* weight;

  __device__ void setup(Shared&) const {}
  template <int kVec>
  __device__ Row row(int64_t, int, const Shared&) const {
    return {};
  }
  template <int kVec>
  __device__ void apply(float (&v)[kVec], const Row&, int col, const Shared&) const {
    float w[kVec];
    load_vec<kVec>(weight + col, w);
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] *= w[k];
  }
};

// RMSNorm times weight, then RoPE on the pairs (2j, 2j+1) of each head. Vectors of 2 or 4 elements start at even
// columns and heads have even size, so a pair never straddles two vectors. When 32 * kVec is a multiple of
// head_dim (head_dim 128 at kVec 4: each chunk of the row is one head), a lane meets the same pairs in every chunk,
// so their cos/sin are computed once per row instead of once per chunk.
struct RmsRopeOp {
  static constexpr bool kCentered = false;
  static constexpr bool kNeedsPairs = true;  // vectors of 2 or 4 only
  using Shared = RopeShared;
  struct Row {
    TokenPosition position;
    bool same_pairs_every_chunk;
    float cos_angle[2], sin_angle[2];  // of the lane's kVec / 2 pairs, when same_pairs_every_chunk
  };
  const float* weight;
  RopeParams rope;

  __device__ void setup(Shared& shared) const { rope_load_shared(rope, shared); }
  template <int kVec>
  __device__ Row row(int64_t token, int lane, const Shared& shared) const {
    Row row{};
    row.position = rope_token_position(rope, shared, token);
    row.same_pairs_every_chunk = (kWarpSize * kVec) % rope.head_dim == 0;
    if (row.same_pairs_every_chunk) {
#pragma unroll
      for (int k = 0; k < kVec; k += 2)
        rope_cos_sin(rope, shared, row.position, ((lane * kVec + k) % rope.head_dim) / 2, row.cos_angle[k / 2],
                     row.sin_angle[k / 2]);
    }
    return row;
  }
  template <int kVec>
  __device__ void apply(float (&v)[kVec], const Row& row, int col, const Shared& shared) const {
    static_assert(kVec % 2 == 0, "RoPE pairs need even vectors");
    float w[kVec];
    load_vec<kVec>(weight + col, w);
#pragma unroll
    for (int k = 0; k < kVec; k += 2) {
      float cos_angle = row.cos_angle[k / 2], sin_angle = row.sin_angle[k / 2];
      if (!row.same_pairs_every_chunk)
        rope_cos_sin(rope, shared, row.position, ((col + k) % rope.head_dim) / 2, cos_angle, sin_angle);
      float a = v[k] * w[k], b = v[k + 1] * w[k + 1];
      rope_rotate(a, b, cos_angle, sin_angle);
      v[k] = a, v[k + 1] = b;
    }
  }
};

// ---- the row kernel ------------------------------------------------------------------------------------------------

// kChunks > 0: lane holds vectors lane, lane + 32, ... (kChunks of them) in registers; kChunks == 0: streaming.
template <typename In, int kVec, int kChunks, typename Op>
__global__ void __launch_bounds__(kRowThreads)
    row_norm_kernel(const In* __restrict__ x, int64_t x_stride, int64_t rows, int width, float eps,
                    uint16_t* __restrict__ out, int64_t out_stride, const __grid_constant__ Op op) {
  __shared__ typename Op::Shared shared;
  op.setup(shared);  // before any thread leaves: it may synchronise the block
  const int lane = threadIdx.x % kWarpSize;
  const int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;  // whole warps leave together, so the reductions below keep full masks
  const In* in = x + row * x_stride;
  uint16_t* dst = out + row * out_stride;
  const int vectors = width / kVec;
  const typename Op::Row row_state = op.template row<kVec>(row, lane, shared);

  if constexpr (kChunks > 0) {
    float v[kChunks][kVec];
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int i = c * kWarpSize + lane;
      if (i < vectors) {
        load_vec<kVec>(in + i * kVec, v[c]);
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) v[c][k] = 0.0f;
      }
#pragma unroll
      for (int k = 0; k < kVec; ++k) sum += v[c][k];
    }
    const float mean = Op::kCentered ? warp_sum(sum) / float(width) : 0.0f;
    float squares = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if (c * kWarpSize + lane >= vectors) continue;
#pragma unroll
      for (int k = 0; k < kVec; ++k) squares += (v[c][k] - mean) * (v[c][k] - mean);
    }
    const float inv = rsqrtf(warp_sum(squares) / float(width) + eps);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int i = c * kWarpSize + lane;
      if (i >= vectors) continue;
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[c][k] = (v[c][k] - mean) * inv;
      op.apply(v[c], row_state, i * kVec, shared);
      store_vec<kVec>(dst + i * kVec, v[c]);
    }
  } else {
    float v[kVec];
    float mean = 0.0f;
    if constexpr (Op::kCentered) {
      float sum = 0.0f;
      for (int i = lane; i < vectors; i += kWarpSize) {
        load_vec<kVec>(in + i * kVec, v);
#pragma unroll
        for (int k = 0; k < kVec; ++k) sum += v[k];
      }
      mean = warp_sum(sum) / float(width);
    }
    float squares = 0.0f;
    for (int i = lane; i < vectors; i += kWarpSize) {
      load_vec<kVec>(in + i * kVec, v);
#pragma unroll
      for (int k = 0; k < kVec; ++k) squares += (v[k] - mean) * (v[k] - mean);
    }
    const float inv = rsqrtf(warp_sum(squares) / float(width) + eps);
    for (int i = lane; i < vectors; i += kWarpSize) {
      load_vec<kVec>(in + i * kVec, v);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] = (v[k] - mean) * inv;
      op.apply(v, row_state, i * kVec, shared);
      store_vec<kVec>(dst + i * kVec, v);
    }
  }
}

template <typename In, int kVec, typename Op>
void launch_with_vector(const char* name, const In* x, int64_t x_stride, int64_t rows, int64_t width, double eps,
                        uint16_t* out, int64_t out_stride, const Op& op, cudaStream_t stream) {
  const int64_t chunks = (width / kVec + kWarpSize - 1) / kWarpSize;
  const dim3 grid(blocks_for(rows, kRowsPerBlock)), block(kRowThreads);
  const int w = int(width);
  const float e = float(eps);
  // Register-resident up to 16 vectors per lane (2048 floats per row at kVec 4); 12 is the DiT's 1536 exactly.
  if (chunks <= 4)
    row_norm_kernel<In, kVec, 4, Op><<<grid, block, 0, stream>>>(x, x_stride, rows, w, e, out, out_stride, op);
  else if (chunks <= 12)
    row_norm_kernel<In, kVec, 12, Op><<<grid, block, 0, stream>>>(x, x_stride, rows, w, e, out, out_stride, op);
  else if (chunks <= 16)
    row_norm_kernel<In, kVec, 16, Op><<<grid, block, 0, stream>>>(x, x_stride, rows, w, e, out, out_stride, op);
  else
    row_norm_kernel<In, kVec, 0, Op><<<grid, block, 0, stream>>>(x, x_stride, rows, w, e, out, out_stride, op);
  LF_CUDA_LAUNCH_CHECK("{} of {} rows x {}", name, rows, width);
}

template <typename In, typename Op>
void launch_row_norm(const char* name, int vec, const In* x, int64_t x_stride, int64_t rows, int64_t width,
                     double eps, uint16_t* out, int64_t out_stride, const Op& op, void* stream) {
  if (vec == 4)
    launch_with_vector<In, 4>(name, x, x_stride, rows, width, eps, out, out_stride, op, as_stream(stream));
  else if (vec == 2)
    launch_with_vector<In, 2>(name, x, x_stride, rows, width, eps, out, out_stride, op, as_stream(stream));
  else if constexpr (!Op::kNeedsPairs)
    launch_with_vector<In, 1>(name, x, x_stride, rows, width, eps, out, out_stride, op, as_stream(stream));
  else
    fail("{}: rows must allow vectors of 2 elements", name);
}

// Returns false when there is nothing to do.
bool check_rows(const char* name, const void* x, int64_t rows, int64_t width, const void* out) {
  LF_CHECK(rows >= 0 && width > 0 && width < (int64_t(1) << 30), "{}: bad shape {} rows x {}", name, rows, width);
  if (rows == 0) return false;
  LF_CHECK(x != nullptr && out != nullptr, "{}: null input or output", name);
  return true;
}

}  // namespace

void layer_norm_modulate(const float* x, int64_t tokens, int64_t width, FrameRows shift, FrameRows scale,
                         int64_t tokens_per_frame, double eps, uint16_t* out, Stream stream) {
  if (!check_rows("layer_norm_modulate", x, tokens, width, out)) return;
  LF_CHECK(shift.data != nullptr && scale.data != nullptr && tokens_per_frame > 0,
           "layer_norm_modulate: needs shift, scale and tokens_per_frame > 0 (got {})", tokens_per_frame);
  const int vec = vector_width(width, {{x, width, 4}, {out, width, 2}, {shift.data, shift.frame_stride, 4},
                                       {scale.data, scale.frame_stride, 4}});
  launch_row_norm("layer_norm_modulate", vec, x, width, tokens, width, eps, out, width,
                  ModulateOp{shift, scale, tokens_per_frame}, stream);
}

void layer_norm_affine(const float* x, int64_t tokens, int64_t width, const float* weight, const float* bias,
                       double eps, uint16_t* out, Stream stream) {
  if (!check_rows("layer_norm_affine", x, tokens, width, out)) return;
  const int vec = vector_width(width, {{x, width, 4}, {out, width, 2}, {weight, 0, 4}, {bias, 0, 4}});
  launch_row_norm("layer_norm_affine", vec, x, width, tokens, width, eps, out, width, AffineOp{weight, bias}, stream);
}

void rms_norm(const uint16_t* x, int64_t x_row_stride, int64_t rows, int64_t width, const float* weight, double eps,
              uint16_t* out, int64_t out_row_stride, Stream stream) {
  if (!check_rows("rms_norm", x, rows, width, out)) return;
  LF_CHECK(weight != nullptr, "rms_norm: null weight");
  if (x_row_stride == 0) x_row_stride = width;
  if (out_row_stride == 0) out_row_stride = width;
  LF_CHECK(x_row_stride >= width && out_row_stride >= width, "rms_norm: row strides {}, {} below width {}",
           x_row_stride, out_row_stride, width);
  const int vec = vector_width(width, {{x, x_row_stride, 2}, {out, out_row_stride, 2}, {weight, 0, 4}});
  launch_row_norm("rms_norm", vec, x, x_row_stride, rows, width, eps, out, out_row_stride, RmsOp{weight}, stream);
}

void rms_norm_rope(const uint16_t* x, int64_t x_row_stride, int64_t tokens, const float* weight, double eps,
                   const RopeLayout& layout, const int64_t* frame_positions, int64_t frame_count, uint16_t* out,
                   int64_t out_row_stride, Stream stream) {
  const int64_t width = layout.heads * layout.head_dim;
  if (!check_rows("rms_norm_rope", x, tokens, width, out)) return;
  LF_CHECK(weight != nullptr, "rms_norm_rope: null weight");
  if (x_row_stride == 0) x_row_stride = width;
  if (out_row_stride == 0) out_row_stride = width;
  LF_CHECK(x_row_stride >= width && out_row_stride >= width, "rms_norm_rope: row strides {}, {} below width {}",
           x_row_stride, out_row_stride, width);
  const int vec = vector_width(width, {{x, x_row_stride, 2}, {out, out_row_stride, 2}, {weight, 0, 4}});
  LF_CHECK(vec >= 2, "rms_norm_rope: rows must be 4-byte aligned (pointers and strides even)");
  detail::for_each_rope_launch(
      "rms_norm_rope", layout, tokens, frame_positions, frame_count,
      [&](int64_t first_token, int64_t count, const RopeParams& params) {
        launch_row_norm("rms_norm_rope", vec, x + first_token * x_row_stride, x_row_stride, count, width, eps,
                        out + first_token * out_row_stride, out_row_stride, RmsRopeOp{weight, params}, stream);
      });
}

}  // namespace lf::gpu
