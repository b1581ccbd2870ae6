// 3D rotary embedding, Wan layout: interleaved pairs, temporal/row/column axes get 22/21/21 pairs at d = 128.
// Angles are computed in double (Wan builds its tables in fp64) and applied once, so the reference is exact
// to fp32 rounding.
#include <cmath>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"

namespace lf::ops::cpu {

void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions) {
  LF_CHECK(x.rank() == 3, "rope_apply: expected [tokens, heads, head_dim], found {}", shape_str(x.shape()));
  const int64_t tokens = x.dim(0), heads = x.dim(1), head_dim = x.dim(2);
  LF_CHECK(head_dim % 2 == 0, "rope_apply: head_dim {} is odd", head_dim);
  LF_CHECK(tokens <= int64_t(frame_positions.size()) * grid.tokens_per_frame,
           "rope_apply: {} tokens but positions for {} frames of {}", tokens, frame_positions.size(),
           grid.tokens_per_frame);
  const RopeSplit split = rope_split(head_dim);
  // Each axis with n pairs has the ladder w_j = theta^(-j/n) (= theta^(-2j/(2n)) in Wan's rope_params).
  std::vector<double> omega(size_t(split.t_pairs + split.h_pairs + split.w_pairs));
  std::vector<int> axis(omega.size());
  int64_t pair = 0;
  for (int a = 0; a < 3; ++a) {
    const int64_t count = a == 0 ? split.t_pairs : a == 1 ? split.h_pairs : split.w_pairs;
    for (int64_t j = 0; j < count; ++j, ++pair) {
      omega[size_t(pair)] = std::pow(grid.theta, -double(j) / double(count));
      axis[size_t(pair)] = a;
    }
  }
  float* data = x.f32();
  const int64_t pairs = int64_t(omega.size());
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t in_frame = t % grid.tokens_per_frame;
    const double position[3] = {double(frame_positions[size_t(t / grid.tokens_per_frame)]),
                                double(in_frame / grid.grid_width), double(in_frame % grid.grid_width)};
    for (int64_t p = 0; p < pairs; ++p) {
      const double angle = position[axis[size_t(p)]] * omega[size_t(p)];
      const double c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* v = data + (t * heads + h) * head_dim + 2 * p;
        const double x0 = v[0], x1 = v[1];
        v[0] = float(x0 * c - x1 * s);
        v[1] = float(x0 * s + x1 * c);
      }
    }
  }
}

}  // namespace lf::ops::cpu
