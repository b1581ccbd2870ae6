#pragma once
// Flow-matching schedule of Self-Forcing (spec 10.2): a 1000-entry sigma table with shift, optional warp of the
// denoising step list onto that table, and sigma lookup by nearest timestep. Table arithmetic is fp32 and follows
// PyTorch's CPU linspace and elementwise ops operation by operation (no fused multiply-adds where PyTorch has
// none), so the timesteps fed to the model are bit-identical to PyTorch's (tests/test_pipeline.cpp pins them).
#include <vector>

#include "config/config.h"

namespace lf {

class FlowMatchSchedule {
 public:
  explicit FlowMatchSchedule(const PipelineConfig& config);

  // Timesteps of the denoising steps, e.g. [1000, 937.5, 833.3333129882812, 625] for shift 5 with warp.
  const std::vector<double>& timesteps() const { return timesteps_; }
  // sigma of each denoising step (sigma_t = sigmas[argmin |timesteps_table - t|]).
  const std::vector<double>& sigmas() const { return sigmas_; }
  double context_timestep() const { return context_timestep_; }
  double sigma_of(double timestep) const;

 private:
  std::vector<float> table_sigmas_, table_timesteps_;
  std::vector<double> timesteps_, sigmas_;
  double context_timestep_;
};

}  // namespace lf
