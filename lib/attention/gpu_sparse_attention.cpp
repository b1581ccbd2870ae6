#include "attention/gpu_sparse_attention.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "attention/cag_schedule.h"
#include "core/error.h"
#include "ops/ops.h"
#if LF_HAVE_CUDA
#include "attention/gpu_planners.h"
#include "ops/cuda/op_timer.h"
#include "ops/cuda/phase_timer.h"
#include "ops/cuda/side_stream.h"
#endif

namespace lf {

#if LF_HAVE_CUDA

namespace {

// One layer's pooled keys and what they were pooled from. Valid for the calls of one chunk: its denoising steps
// and refresh pass see the same past frames (only the chunk's own frames are rewritten), so after the chunk's
// first call only the chunk's frames are pooled again. Across chunks only in one case (carries_all_frames):
// the previous chunk's refresh pass stored every frame's blocks, and the next chunk sees exactly those frames
// plus its own (same storage, frame count grown by the chunk: no rolling eviction moved them, and the fixed
// per-head stride kept every block in place). Otherwise a chunk's first call pools everything, whatever the KV
// cache did between chunks (rolling windows, re-roped relative positions), and nothing carries between
// generations (a new generation restarts at chunk 0).
struct LayerKeys {
  Tensor pooled;  // fp32 [heads, stride, head_dim], capacity grown on demand
  bool valid = false;
  bool carries_all_frames = false;  // every visible frame's blocks are in `pooled` (stored by a refresh pass)
  int64_t chunk = -1, frames_visible = 0, frames_in_chunk = 0, tokens_per_frame = 0, key_block = 0, heads = 0,
          head_dim = 0, stride = 0;
  const void* k = nullptr;  // the keys' storage: a different tensor is never trusted to hold the same frames

  bool same_layout(const AttentionCall& call, const AttentionConfig& config, int64_t call_heads,
                   int64_t call_head_dim, int64_t call_stride) const {
    return valid && tokens_per_frame == call.tokens_per_frame && key_block == config.key_block &&
           heads == call_heads && head_dim == call_head_dim && stride == call_stride && k == call.k->raw();
  }
  bool holds_past_of(const AttentionCall& call, const AttentionConfig& config, int64_t call_heads,
                     int64_t call_head_dim, int64_t call_stride) const {
    return same_layout(call, config, call_heads, call_head_dim, call_stride) && chunk == call.chunk &&
           frames_visible == call.frames_visible && frames_in_chunk == call.frames_in_chunk;
  }
  bool holds_previous_chunk_of(const AttentionCall& call, const AttentionConfig& config, int64_t call_heads,
                               int64_t call_head_dim, int64_t call_stride) const {
    return same_layout(call, config, call_heads, call_head_dim, call_stride) && carries_all_frames &&
           chunk + 1 == call.chunk && frames_visible + call.frames_in_chunk == call.frames_visible;
  }
};

// A static planner's mask depends on positions only; it is uploaded again only when they change.
struct StaticMask {
  bool valid = false;
  int64_t frames_visible = 0, frames_in_chunk = 0, tokens_per_frame = 0, query_tokens = 0, heads = 0;
  Tensor row_offsets, key_indices;
  BlockMask host;
};

// Buffers that grow with the visible frames are sized for at least kMinCapacityFrames of them, then in steps of
// kCapacityStepFrames. Why: a video's visible frames grow chunk by chunk, and sizing for the current count made
// the timed H200 run call cudaMalloc 96 times after its first chunk (3 growths x 30 layers); the host stalls
// there while the GPU drains its queue. 21 latent frames (81 video frames) fit in the first size.
constexpr int64_t kMinCapacityFrames = 24, kCapacityStepFrames = 8;

int64_t capacity_frames(int64_t frames) {
  return std::max(kMinCapacityFrames, (frames + kCapacityStepFrames - 1) / kCapacityStepFrames * kCapacityStepFrames);
}

// Tensor with at least `bytes` of device memory (reallocated only to grow).
void* ensure_bytes(Tensor& tensor, size_t bytes) {
  if (!tensor.defined() || tensor.nbytes() < bytes) {
    tensor = Tensor();  // the old block goes back to the allocator first
    tensor = Tensor::empty({int64_t(std::max<size_t>(bytes, 256))}, DType::U8, Device::CUDA);
  }
  return tensor.raw();
}

Tensor int_tensor_on_gpu(const std::vector<int32_t>& values) {
  Tensor host = Tensor::empty({int64_t(values.size())}, DType::I32);
  std::copy(values.begin(), values.end(), static_cast<int32_t*>(host.raw()));
  return host.to(Device::CUDA);
}

std::vector<int32_t> to_host_ints(const Tensor& device, int64_t count) {
  const Tensor host = device.to(Device::CPU);
  const auto* data = static_cast<const int32_t*>(host.raw());
  return std::vector<int32_t>(data, data + count);
}

// The identity of one attention call: a mask planned ahead (gpu_plan_ahead) is used only by the call it was
// planned for.
struct CallKey {
  int64_t chunk = -1, step = -1, layer = -1, frames_visible = -1;
  bool is_refresh = false;
  const void* q = nullptr;
  bool operator==(const CallKey&) const = default;
};

CallKey key_of(const AttentionCall& call) {
  return {call.chunk, call.step, call.layer, call.frames_visible, call.is_refresh, call.q->raw()};
}

}  // namespace

struct GpuSparseState::Impl {
  std::vector<LayerKeys> layers;
  Tensor workspace, row_offsets, key_indices;
  StaticMask static_mask;
  gpu::PhaseTimer timer;
  gpu::SideStream side;  // gpu_plan_ahead's planner runs here, beside the KV-cache write
  bool ahead_pending = false, ahead_timed = false;
  CallKey ahead_call;
  // The mask of the last call (for recall): device CSR, or none for a dense call.
  const int* last_row_offsets = nullptr;
  const int* last_key_indices = nullptr;
  std::array<int64_t, 4> last_planned{-1, -1, -1, -1};  // LF_SPARSE_SKIP_PLANNER's shape of the last plan
};

GpuSparseState::GpuSparseState() : impl_(std::make_unique<Impl>()) {}
GpuSparseState::~GpuSparseState() = default;

namespace {

struct DeviceMask {
  const int* row_offsets = nullptr;
  const int* key_indices = nullptr;
};

ops::BlockSparseMaskView device_mask_view(const BlockGeometry& geometry, int64_t heads, const DeviceMask& mask) {
  ops::BlockSparseMaskView view;
  view.geometry = geometry;
  view.heads = heads;
  view.row_offsets = mask.row_offsets;
  view.key_indices = mask.key_indices;
  view.device = Device::CUDA;
  return view;
}

// A static planner's mask: planned on the host and uploaded when the geometry changes, else nothing.
DeviceMask static_mask_for(const AttentionCall& call, MaskPlanner& planner, GpuSparseState::Impl& s) {
  const Tensor& q = *call.q;
  const int64_t heads = q.dim(1);
  StaticMask& m = s.static_mask;
  if (!(m.valid && m.frames_visible == call.frames_visible && m.frames_in_chunk == call.frames_in_chunk &&
        m.tokens_per_frame == call.tokens_per_frame && m.query_tokens == q.dim(0) && m.heads == heads)) {
    m.valid = false;
    m.host = planner.plan(call);
    m.row_offsets = int_tensor_on_gpu(m.host.row_offsets);
    m.key_indices = int_tensor_on_gpu(m.host.key_indices);
    m.frames_visible = call.frames_visible;
    m.frames_in_chunk = call.frames_in_chunk;
    m.tokens_per_frame = call.tokens_per_frame;
    m.query_tokens = q.dim(0);
    m.heads = heads;
    m.valid = true;
  }
  return {static_cast<const int*>(m.row_offsets.raw()), static_cast<const int*>(m.key_indices.raw())};
}

// Plans the call's mask on the GPU (pooling, scores, selection) on `stream`, from the call's q and pooled blocks
// and the layer's cached past frames; `timed`: the phase timer's marks 0 and 1 bracket the launches.
DeviceMask plan_on_gpu(const AttentionCall& call, const AttentionConfig& config, const AttentionBackendEntry& backend,
                       MaskPlanner& planner, GpuSparseState::Impl& s, void* stream, bool timed) {
  const Tensor& q = *call.q;
  const BlockGeometry geometry = geometry_for(call, config);
  const int64_t heads = q.dim(1), head_dim = q.dim(2), rows = heads * geometry.query_blocks();
  const int64_t past = call.frames_visible - call.frames_in_chunk;
  const GpuPlanShape shape{geometry, heads, head_dim};

  LF_CHECK(call.layer >= 0, "GPU sparse attention: layer {} is negative", call.layer);
  if (s.layers.size() <= size_t(call.layer)) s.layers.resize(size_t(call.layer) + 1);
  LayerKeys& cache = s.layers[size_t(call.layer)];
  // A chunk's first call (step 0) always pools every frame; later calls of the chunk reuse the past frames.
  const bool first_call_of_chunk = call.step == 0 && !call.is_refresh;
  GpuPlanShape capacity = shape;  // what the buffers are sized for
  capacity.geometry.key_frames = capacity_frames(call.frames_visible);
  const int64_t stride = capacity.geometry.key_blocks();  // fixed per head while the capacity holds
  const size_t pooled_capacity = size_t(heads) * size_t(stride) * size_t(head_dim) * sizeof(float);
  const bool fits = cache.pooled.defined() && cache.pooled.nbytes() >= pooled_capacity;
  const bool reuse = fits && (first_call_of_chunk ? cache.holds_previous_chunk_of(call, config, heads, head_dim, stride)
                                                  : cache.holds_past_of(call, config, heads, head_dim, stride));
  cache.valid = false;  // until this plan has been issued
  cache.carries_all_frames = false;
  GpuPlanRequest in;
  in.shape = shape;
  in.q = q.raw();
  in.k = call.k->raw();
  in.first_new_frame = reuse ? past : 0;
  in.pooled_keys = static_cast<float*>(ensure_bytes(cache.pooled, pooled_capacity));
  in.pooled_keys_stride = stride;
  in.workspace_bytes = gpu_planner_workspace_bytes(shape);
  in.workspace = ensure_bytes(s.workspace, gpu_planner_workspace_bytes(capacity));
  // Pooled q and the chunk's key blocks from the RoPE pass, when they are of this plan's blocks and shapes.
  if (const RopePooled* given = call.pooled;
      given != nullptr && given->query_block == config.query_block && given->key_block == config.key_block) {
    const int64_t new_blocks = call.frames_in_chunk * geometry.blocks_per_frame();
    LF_CHECK(given->queries.shape() == Shape({heads, geometry.query_blocks(), head_dim}) &&
                 given->new_keys.shape() == Shape({heads, new_blocks, head_dim}) &&
                 given->queries.dtype() == DType::F32 && given->new_keys.dtype() == DType::F32 &&
                 given->queries.is_cuda() && given->new_keys.is_cuda(),
             "GPU sparse attention: pooled blocks {} / {} do not fit {} heads x {} query blocks / {} key blocks",
             shape_str(given->queries.shape()), shape_str(given->new_keys.shape()), heads, geometry.query_blocks(),
             new_blocks);
    in.given_pooled_queries = static_cast<const float*>(given->queries.raw());
    in.given_key_blocks = static_cast<const float*>(given->new_keys.raw());
    in.given_first_frame = past;
  }
  in.row_offsets = static_cast<int32_t*>(ensure_bytes(s.row_offsets, size_t(rows + 1) * sizeof(int32_t)));
  in.key_indices =
      static_cast<int32_t*>(ensure_bytes(s.key_indices, size_t(gpu_planner_max_selected(capacity)) * sizeof(int32_t)));
  const int topk = int(std::max<int64_t>(1, topk_for(planner.target_sparsity(call.chunk), geometry.key_blocks())));
  // Measurement only (LF_SPARSE_SKIP_PLANNER=1; the masks are then wrong): a call whose mask has the shape of
  // the last planned one reuses that mask without planning, so a bench A/B gives the planner's whole cost in
  // DiT time, host work included (the op timer sees GPU intervals only).
  const std::array<int64_t, 4> shape_key{call.frames_visible, call.frames_in_chunk, topk, rows};
  if (gpu_skip_planner_for_measurement() && s.last_planned == shape_key) {
    if (timed) s.timer.mark(0, stream), s.timer.mark(1, stream);
    return {in.row_offsets, in.key_indices};
  }
  s.last_planned = shape_key;
  // Timed from here: the host-side bookkeeping above must not count as GPU planner time.
  const gpu::ScopedOpTimer op_timed("sparse_planner", stream);
  if (timed) s.timer.mark(0, stream);
  GpuPlanSettings settings;
  settings.topk = topk;
  settings.scale = call.scale;
  settings.top_p = config.top_p;
  settings.chunk_frames = call.frames_in_chunk;
  settings.keep_frames = config.keep_frames;
  settings.keep_sink = config.keep_sink;
  settings.keep_near = config.keep_near;
  gpu_plan(backend.gpu_planner, in, settings, stream);
  // The refresh pass is the chunk's last write of its keys: store its given blocks so that the next chunk's
  // first call finds every past frame pooled.
  if (call.is_refresh && in.given_key_blocks != nullptr) {
    gpu_store_given_key_blocks(in, stream);
    cache.carries_all_frames = true;
  }
  if (timed) s.timer.mark(1, stream);
  cache.chunk = call.chunk;
  cache.frames_visible = call.frames_visible;
  cache.frames_in_chunk = call.frames_in_chunk;
  cache.tokens_per_frame = call.tokens_per_frame;
  cache.key_block = config.key_block;
  cache.heads = heads;
  cache.head_dim = head_dim;
  cache.stride = stride;
  cache.k = call.k->raw();
  cache.valid = true;
  return {in.row_offsets, in.key_indices};
}

}  // namespace

bool gpu_plan_ahead(const AttentionCall& call, const AttentionConfig& config, const AttentionBackendEntry& backend,
                    MaskPlanner& planner, GpuSparseState& state, bool timed) {
  GpuSparseState::Impl& s = state.impl();
  if (s.ahead_pending) {  // a call planned ahead but never run: its mask is dropped, the streams re-joined
    s.side.join();
    s.ahead_pending = false;
  }
  if (planner.plans_dense(call) || !backend.plans_from_pooled_blocks() || call.pooled == nullptr ||
      call.pooled->query_block != config.query_block || call.pooled->key_block != config.key_block)
    return false;
  s.side.fork();
  plan_on_gpu(call, config, backend, planner, s, s.side.stream(), timed);
  s.ahead_pending = true;
  s.ahead_timed = timed;
  s.ahead_call = key_of(call);
  return true;
}

Tensor gpu_planned_attention(const AttentionCall& call, const AttentionConfig& config,
                             const AttentionBackendEntry& backend, MaskPlanner& planner, GpuSparseState& state,
                             BlockMask* host_mask, GpuSparseTimes* times) {
  GpuSparseState::Impl& s = state.impl();
  const Tensor& q = *call.q;
  const BlockGeometry geometry = geometry_for(call, config);
  const int64_t heads = q.dim(1), rows = heads * geometry.query_blocks();
  // A mask planned ahead for this call: the default stream waits for it (and so the kernel follows the plan).
  const bool planned_ahead = s.ahead_pending && s.ahead_call == key_of(call);
  const bool planner_timed = planned_ahead ? s.ahead_timed : times != nullptr;
  if (s.ahead_pending) s.side.join();
  s.ahead_pending = false;
  s.last_row_offsets = s.last_key_indices = nullptr;
  if (planner.plans_dense(call)) {
    if (times) s.timer.mark(2);
    Tensor out = ops::attention(q, *call.k, *call.v, call.scale);
    if (times) {
      s.timer.mark(3);
      times->planner_ms = 0;
      times->kernel_ms = s.timer.elapsed_ms(2, 3);
    }
    if (host_mask) *host_mask = BlockMask::dense(heads, geometry);
    return out;
  }

  const bool static_planner = !backend.plans_from_pooled_blocks();
  DeviceMask mask;
  if (planned_ahead) {
    mask = {static_cast<const int*>(s.row_offsets.raw()), static_cast<const int*>(s.key_indices.raw())};
  } else if (static_planner) {
    const gpu::ScopedOpTimer timed("sparse_planner");
    if (times) s.timer.mark(0);
    mask = static_mask_for(call, planner, s);
    if (times) s.timer.mark(1);
  } else {
    mask = plan_on_gpu(call, config, backend, planner, s, nullptr, times != nullptr);
  }
  const int* row_offsets = mask.row_offsets;
  const int* key_indices = mask.key_indices;
  s.last_row_offsets = row_offsets;
  s.last_key_indices = key_indices;

  // The op times itself as the enclosing op class (self_attention inside the DiT's scope).
  if (times) s.timer.mark(2);
  Tensor output = ops::block_sparse_attention(q, *call.k, *call.v, device_mask_view(geometry, heads, mask), call.scale);
  if (times) {
    s.timer.mark(3);
    times->planner_ms = planner_timed ? s.timer.elapsed_ms(0, 1) : 0;
    times->kernel_ms = s.timer.elapsed_ms(2, 3);
  }
  // Statistics only: the copies come after the kernel so that they never sit between the two timed phases.
  if (host_mask) {
    if (static_planner) {
      *host_mask = s.static_mask.host;
    } else {
      host_mask->heads = heads;
      host_mask->geometry = geometry;
      host_mask->row_offsets = to_host_ints(s.row_offsets, rows + 1);
      host_mask->key_indices = to_host_ints(s.key_indices, host_mask->row_offsets.back());
      host_mask->scores.clear();
    }
  }
  return output;
}

std::vector<double> gpu_attention_recall(const AttentionCall& call, const AttentionConfig& config, MaskPlanner& planner,
                                         GpuSparseState& state, int64_t row_stride) {
  GpuSparseState::Impl& s = state.impl();
  const Tensor& q = *call.q;
  if (planner.plans_dense(call)) return std::vector<double>(size_t(q.dim(1)), 1.0);
  LF_CHECK(s.last_row_offsets != nullptr, "GPU recall: no block-sparse mask from this call");
  return ops::block_sparse_recall(q, *call.k,
                                  device_mask_view(geometry_for(call, config), q.dim(1),
                                                   {s.last_row_offsets, s.last_key_indices}),
                                  call.scale, row_stride);
}

#else

struct GpuSparseState::Impl {};
GpuSparseState::GpuSparseState() : impl_(std::make_unique<Impl>()) {}
GpuSparseState::~GpuSparseState() = default;

bool gpu_plan_ahead(const AttentionCall&, const AttentionConfig&, const AttentionBackendEntry&, MaskPlanner&,
                    GpuSparseState&, bool) {
  return false;
}

Tensor gpu_planned_attention(const AttentionCall&, const AttentionConfig&, const AttentionBackendEntry&, MaskPlanner&,
                             GpuSparseState&, BlockMask*, GpuSparseTimes*) {
  fail("GPU attention in a build without CUDA");
}

std::vector<double> gpu_attention_recall(const AttentionCall&, const AttentionConfig&, MaskPlanner&, GpuSparseState&,
                                         int64_t) {
  fail("GPU recall in a build without CUDA");
}

#endif

}  // namespace lf
