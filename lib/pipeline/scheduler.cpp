#include "pipeline/scheduler.h"

#include <cmath>

#include "core/error.h"

namespace lf {

namespace {

// a * b rounded to fp32 on its own: the volatile store keeps the compiler from fusing it into a following add
// (GCC contracts a * b + c into an FMA under -march=x86-64-v3, which changes the last bit).
float product_f32(float a, float b) {
  volatile float product = a * b;
  return product;
}

// torch.linspace(start, end, steps) in fp32 exactly as PyTorch's CPU kernel fills it (the AVX2 build the
// reference scheduler ran on): step = (end - start) / (steps - 1) in fp32. Whole pairs of 8-lane vectors first:
// a vector's base is fma(step, ind, start) when it starts below steps / 2 (so a vector straddling the midpoint
// counts from the start) and fma(-step, steps - 1 - ind, end) otherwise; lane j adds step * j, rounded, not fused.
// The entries after the last whole pair are scalar fma's from the nearer end. Checked against torch 1.13 entry by
// entry for linspace(1, 0, 1001).
std::vector<float> torch_linspace_f32(float start, float end, int64_t steps) {
  constexpr int64_t kLanes = 8;
  const float step = (end - start) / float(steps - 1);
  const int64_t halfway = steps / 2, vector_end = steps / (2 * kLanes) * (2 * kLanes);
  std::vector<float> out(static_cast<size_t>(steps));
  for (int64_t i = 0; i < vector_end; i += kLanes) {
    const float base = i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(steps - 1 - i), end);
    for (int64_t j = 0; j < kLanes; ++j) out[size_t(i + j)] = base + product_f32(step, float(j));
  }
  for (int64_t i = vector_end; i < steps; ++i)
    out[size_t(i)] = i < halfway ? std::fma(step, float(i), start) : std::fma(-step, float(steps - 1 - i), end);
  return out;
}

}  // namespace

FlowMatchSchedule::FlowMatchSchedule(const PipelineConfig& config) {
  constexpr int kTrainSteps = 1000;
  const float shift = float(config.shift);
  // sigma_raw = linspace(1, 0, 1001)[:-1] in fp32; sigma = shift*s / (1 + (shift-1)*s); t = 1000*sigma, each
  // operation a separate fp32 tensor op in the reference (so nothing fused).
  const std::vector<float> raw = torch_linspace_f32(1.0f, 0.0f, kTrainSteps + 1);
  for (int i = 0; i < kTrainSteps; ++i) {
    const float numerator = product_f32(shift, raw[size_t(i)]);
    const float denominator = 1.0f + product_f32(shift - 1.0f, raw[size_t(i)]);
    const float sigma = numerator / denominator;
    table_sigmas_.push_back(sigma);
    table_timesteps_.push_back(sigma * float(kTrainSteps));
  }
  for (double step : config.denoising_steps) {
    double timestep = step;
    if (config.warp) {
      // Warp: step s -> the table's timestep at position 1000 - s, the table extended by a trailing 0.
      const int position = kTrainSteps - int(step);
      LF_CHECK(position >= 0 && position <= kTrainSteps, "denoising step {} out of range for warp", step);
      timestep = position == kTrainSteps ? 0.0 : double(table_timesteps_[size_t(position)]);
    }
    timesteps_.push_back(timestep);
    sigmas_.push_back(sigma_of(timestep));
  }
  context_timestep_ = config.context_noise;
}

double FlowMatchSchedule::sigma_of(double timestep) const {
  size_t best = 0;
  double best_distance = INFINITY;
  for (size_t i = 0; i < table_timesteps_.size(); ++i) {
    const double distance = std::fabs(double(table_timesteps_[i]) - timestep);
    if (distance < best_distance) best = i, best_distance = distance;
  }
  return table_sigmas_[best];
}

}  // namespace lf
