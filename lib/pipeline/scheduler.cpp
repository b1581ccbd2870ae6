#include "pipeline/scheduler.h"

#include <cmath>

#include "core/error.h"

namespace lf {

FlowMatchSchedule::FlowMatchSchedule(const PipelineConfig& config) {
  constexpr int kTrainSteps = 1000;
  const float shift = float(config.shift);
  // sigma_raw = linspace(1, 0, 1001)[:-1] in fp32; sigma = shift*s / (1 + (shift-1)*s); t = 1000*sigma.
  for (int i = 0; i < kTrainSteps; ++i) {
    const float raw = 1.0f - float(i) * (1.0f / float(kTrainSteps));
    const float sigma = shift * raw / (1.0f + (shift - 1.0f) * raw);
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
