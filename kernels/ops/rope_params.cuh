#pragma once
// Wan's 3D RoPE, shared by rope_apply and the fused rms_norm_rope: the per-launch parameters (built on the host
// in fp64 exactly as lib/ops/cpu/rope_cpu.cpp builds them) and the per-pair rotation on the device.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "kernels/ops/device_helpers.cuh"
#include "kernels/ops/gpu_ops.h"

namespace lf::gpu::detail {

constexpr int kMaxRopePairs = 128;            // head_dim <= 256
constexpr int kMaxRopeFramesPerLaunch = 64;   // longer calls are split into several launches, frame-aligned

// Passed by value (__grid_constant__): no device buffer, so a call needs no upload and no allocation.
struct RopeParams {
  double omega[kMaxRopePairs];                      // angular frequency of each pair of a head
  double frame_position[kMaxRopeFramesPerLaunch];   // temporal position of each frame of this launch
  int pairs = 0, t_pairs = 0, h_pairs = 0, head_dim = 0, frames = 0;
  int64_t tokens_per_frame = 0, grid_width = 0;
};

// Lanes read different pairs' frequencies at once: from shared memory that is one access, from the kernel
// parameter bank it would be one access per distinct address.
struct RopeShared {
  double omega[kMaxRopePairs];
  double frame_position[kMaxRopeFramesPerLaunch];
};

__device__ __forceinline__ void rope_load_shared(const RopeParams& params, RopeShared& shared) {
  for (int i = threadIdx.x; i < params.pairs; i += blockDim.x) shared.omega[i] = params.omega[i];
  for (int i = threadIdx.x; i < params.frames; i += blockDim.x) shared.frame_position[i] = params.frame_position[i];
  __syncthreads();
}

struct TokenPosition {
  double frame, row, column;
};

// `token` counts from the first token of this launch, which starts on a frame boundary.
__device__ __forceinline__ TokenPosition rope_token_position(const RopeParams& params, const RopeShared& shared,
                                                             int64_t token) {
  const int64_t frame = token / params.tokens_per_frame;
  const int64_t in_frame = token - frame * params.tokens_per_frame;
  const int64_t row = in_frame / params.grid_width;
  return {shared.frame_position[frame], double(row), double(in_frame - row * params.grid_width)};
}

// cos/sin of position * omega. The product is formed and reduced to [-pi, pi] in fp64, so the fp32 cos/sin are
// accurate for any position (absolute temporal positions keep growing in long videos), at fp32 cost.
__device__ __forceinline__ void rope_cos_sin(const RopeParams& params, const RopeShared& shared,
                                             const TokenPosition& position, int pair, float& cos_out,
                                             float& sin_out) {
  const double axis_position =
      pair < params.t_pairs ? position.frame : pair < params.t_pairs + params.h_pairs ? position.row : position.column;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double angle = axis_position * shared.omega[pair];
  const double reduced = fma(-rint(angle * (1.0 / kTwoPi)), kTwoPi, angle);
  sincosf(float(reduced), &sin_out, &cos_out);
}

// (a, b) as a complex number times e^{i angle}.
__device__ __forceinline__ void rope_rotate(float& a, float& b, float cos_angle, float sin_angle) {
  const float a0 = a;
  a = a0 * cos_angle - b * sin_angle;
  b = a0 * sin_angle + b * cos_angle;
}

// Splits a call into frame-aligned launches of at most kMaxRopeFramesPerLaunch frames and builds each launch's
// parameters; launch(first_token, token_count, params) enqueues one.
template <typename Launch>
void for_each_rope_launch(const char* op, const RopeLayout& layout, int64_t tokens, const int64_t* frame_positions,
                          int64_t frame_count, Launch&& launch) {
  LF_CHECK(layout.heads > 0 && layout.head_dim > 0 && layout.head_dim % 2 == 0 &&
               layout.head_dim / 2 <= kMaxRopePairs,
           "{}: unsupported heads {} x head_dim {} (head_dim must be even and at most {})", op, layout.heads,
           layout.head_dim, 2 * kMaxRopePairs);
  LF_CHECK(layout.tokens_per_frame > 0 && layout.grid_width > 0, "{}: tokens_per_frame {} and grid_width {}", op,
           layout.tokens_per_frame, layout.grid_width);
  LF_CHECK(tokens >= 0 && frame_count >= 0 && tokens <= frame_count * layout.tokens_per_frame,
           "{}: {} tokens but positions for {} frames of {}", op, tokens, frame_count, layout.tokens_per_frame);
  if (tokens == 0) return;
  LF_CHECK(frame_positions != nullptr, "{}: no frame positions", op);

  RopeParams params;
  params.head_dim = int(layout.head_dim);
  params.pairs = int(layout.head_dim / 2);
  // Same split as ops::rope_split (lib/ops is not linked into the kernels): 22/21/21 pairs for head_dim 128.
  const int spatial = params.pairs / 3;
  params.t_pairs = params.pairs - 2 * spatial;
  params.h_pairs = spatial;
  params.tokens_per_frame = layout.tokens_per_frame;
  params.grid_width = layout.grid_width;
  int pair = 0;
  for (int count : {params.t_pairs, params.h_pairs, spatial})
    for (int j = 0; j < count; ++j, ++pair) params.omega[pair] = std::pow(layout.theta, -double(j) / double(count));

  for (int64_t first_frame = 0; first_frame * layout.tokens_per_frame < tokens;
       first_frame += kMaxRopeFramesPerLaunch) {
    const int64_t first_token = first_frame * layout.tokens_per_frame;
    const int64_t token_count = std::min(tokens - first_token, kMaxRopeFramesPerLaunch * layout.tokens_per_frame);
    params.frames = int((token_count + layout.tokens_per_frame - 1) / layout.tokens_per_frame);
    for (int f = 0; f < params.frames; ++f) params.frame_position[f] = double(frame_positions[first_frame + f]);
    launch(first_token, token_count, params);
  }
}

}  // namespace lf::gpu::detail
