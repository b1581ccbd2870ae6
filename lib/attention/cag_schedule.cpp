#include "attention/cag_schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lf {

std::vector<double> cag_sparsities(const CagSettings& s) {
  LF_CHECK(s.chunk_frames > 0 && s.frames % s.chunk_frames == 0, "CAG: {} frames is not a whole number of chunks",
           s.frames);
  const int64_t chunks = s.frames / s.chunk_frames;
  std::vector<double> sparsity(size_t(chunks), 0.0);
  if (chunks < 2) return sparsity;
  double target = 0, base = 0, weighted_alpha = 0;
  std::vector<double> alpha(size_t(chunks), 0.0);
  for (int64_t j = 1; j < chunks; ++j) {
    const double cumulative = double((j + 1) * s.chunk_frames);
    const double kv = s.window_frames < 0 ? cumulative : std::min(cumulative, double(s.window_frames));
    alpha[size_t(j)] = 1.0 / std::sqrt(cumulative);
    target += (1.0 - s.target_sparsity) * kv;
    base += (1.0 - s.base_sparsity) * kv;
    weighted_alpha += alpha[size_t(j)] * kv;
  }
  const double beta = (target - base) / weighted_alpha;
  for (int64_t j = 1; j < chunks; ++j) sparsity[size_t(j)] = s.base_sparsity - alpha[size_t(j)] * beta;
  return sparsity;
}

int64_t topk_for(double sparsity, int64_t key_blocks) {
  // Exactly the released code's int(topk_ratio * K) in double precision, truncation included.
  const int64_t keep = int64_t((1.0 - sparsity) * double(key_blocks));
  return std::min(key_blocks, keep);
}

}  // namespace lf
