// The attention backend: a mask planner x an operator, with statistics. `dense` skips planning and runs the dense
// kernel (the exact reference); every other backend plans a BlockMask and runs the block-sparse operator.
#include <chrono>
#include <cmath>

#include "attention/attention_backend.h"
#include "attention/backend_registry.h"
#include "attention/gpu_sparse_attention.h"
#include "attention/planners.h"
#include "attention/sparse_operator.h"
#include "core/error.h"
#include "ops/ops.h"

namespace lf {

namespace {

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

// rel-L2 of two attention outputs of any device and dtype, computed on the host in double.
double output_rel_l2(const Tensor& out, const Tensor& reference) {
  const Tensor a = (out.is_cuda() ? out.to(Device::CPU) : out), b = (reference.is_cuda() ? reference.to(Device::CPU) : reference);
  const Tensor af = a.dtype() == DType::F32 ? a : a.to(DType::F32), bf = b.dtype() == DType::F32 ? b : b.to(DType::F32);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < af.numel(); ++i) {
    const double d = double(af.f32()[i]) - double(bf.f32()[i]);
    diff += d * d;
    norm += double(bf.f32()[i]) * double(bf.f32()[i]);
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

class PlannedBackend final : public AttentionBackend {
 public:
  PlannedBackend(const AttentionConfig& config, const AttentionBackendEntry& entry,
                 std::unique_ptr<MaskPlanner> planner, AttentionStats* stats)
      : config_(config), entry_(entry), planner_(std::move(planner)), stats_(stats) {}

  std::string name() const override { return entry_.name; }

  // The GPU planners that pool q and k take them from the RoPE pass.
  std::pair<int64_t, int64_t> pooling(const AttentionCall& call, bool on_gpu) const override {
    if (!on_gpu || !entry_.plans_from_pooled_blocks() || !config_.fused_rope_pooling ||
        planner_->plans_dense(call))
      return {0, 0};
    return {config_.query_block, config_.key_block};
  }

  void plan_ahead(const AttentionCall& call) override {
    if (call.q->is_cuda() && config_.plan_beside_cache_write)
      gpu_plan_ahead(call, config_, entry_, *planner_, gpu_state_, stats_ != nullptr);
  }

  Tensor run(const AttentionCall& call) override {
    const bool dense = entry_.exact_dense;
    AttentionRecord record;
    record.chunk = call.chunk;
    record.step = call.step;
    record.layer = call.layer;
    record.is_refresh = call.is_refresh;
    record.frames_visible = call.frames_visible;
    record.target_sparsity = planner_->target_sparsity(call.chunk);
    auto started = std::chrono::steady_clock::now();
    BlockMask mask;
    Tensor out;
    GpuSparseTimes gpu_times;
    if (call.q->is_cuda()) {
      // Planning and attention both run on the GPU; with statistics, CUDA events time the two phases.
      out = gpu_planned_attention(call, config_, entry_, *planner_, gpu_state_, stats_ ? &mask : nullptr,
                                  stats_ ? &gpu_times : nullptr);
    } else {
      if (!dense || stats_) mask = planner_->plan(call);
      record.planner_ms = elapsed_ms(started);
      started = std::chrono::steady_clock::now();
      out = dense ? ops::attention(*call.q, *call.k, *call.v, call.scale)
                  : block_sparse_attention(*call.q, *call.k, *call.v, mask, call.scale);
    }
    if (stats_) {
      ops::synchronize_device();
      record.kernel_ms = elapsed_ms(started);
      if (call.q->is_cuda()) {
        record.planner_ms = gpu_times.planner_ms;
        record.kernel_ms = gpu_times.kernel_ms;
      }
      const int64_t rows = mask.geometry.query_blocks(), key_blocks = mask.geometry.key_blocks();
      for (int64_t h = 0; h < mask.heads; ++h) {
        int64_t selected = 0;
        for (int64_t qb = 0; qb < rows; ++qb) selected += mask.row_size(h * rows + qb);
        record.head_density.push_back(double(selected) / double(rows * key_blocks));
      }
      if (stats_->measure_recall)
        record.head_recall =
            dense ? std::vector<double>(size_t(mask.heads), 1.0)
            : call.q->is_cuda()
                ? gpu_attention_recall(call, config_, *planner_, gpu_state_, stats_->recall_row_stride)
                : attention_recall(*call.q, *call.k, mask, call.scale, stats_->recall_row_stride);
      if (stats_->measure_output_error) {
        const Tensor reference = ops::attention(*call.q, *call.k, *call.v, call.scale);
        record.output_rel_l2 = dense ? 0.0 : output_rel_l2(out, reference);
      }
      for (const auto& wanted : stats_->keep_masks_for)
        if (wanted[0] == call.chunk && wanted[1] == call.step && wanted[2] == call.layer)
          stats_->kept_masks.emplace_back(wanted, mask);
      stats_->records.push_back(std::move(record));
    }
    return out;
  }

 private:
  AttentionConfig config_;
  const AttentionBackendEntry& entry_;
  std::unique_ptr<MaskPlanner> planner_;
  AttentionStats* stats_;
  GpuSparseState gpu_state_;  // pooled-key caches and buffers of the GPU path, kept between calls
};

}  // namespace

std::unique_ptr<AttentionBackend> make_attention_backend(const AttentionConfig& config,
                                                         const PipelineConfig* pipeline, AttentionStats* stats) {
  const AttentionBackendEntry& entry = attention_backend_entry(config.backend);
  LF_CHECK(pipeline != nullptr || !entry.needs_video_schedule,
           "attention backend '{}' needs the video length and chunk size (its CAG schedule)", entry.name);
  const int64_t frames = pipeline ? pipeline->frames : 0, chunk_frames = pipeline ? pipeline->chunk_frames : 1;
  return std::make_unique<PlannedBackend>(config, entry, entry.make_planner(config, frames, chunk_frames), stats);
}

}  // namespace lf
