#pragma once
// The GPU side of planned attention: GPU planners (kernels/sparse) build the BlockMask in device memory and the
// block-sparse flash kernel consumes it, so nothing crosses to the host in the loop. Static planners (positions
// only) plan on the host and upload their small CSR.
#include "attention/attention_backend.h"
#include "attention/planners.h"

namespace lf {

// Runs `config.backend` for a GPU call. `target_sparsity` comes from the planner (CAG for lightforcing).
// host_mask (optional) receives the mask for statistics (a device-to-host copy).
Tensor gpu_planned_attention(const AttentionCall& call, const AttentionConfig& config, MaskPlanner& planner,
                             BlockMask* host_mask);

}  // namespace lf
