// Dispatch: a call whose tensors live on the GPU goes to ops::cuda (when the build has it), otherwise to the CPU
// reference. Mixed devices are an error naming the op: transfers are always explicit.
#include "ops/ops.h"

#include <initializer_list>

#include "core/error.h"
#include "ops/cpu/cpu_ops.h"
#if LF_HAVE_CUDA
#include "ops/cuda/conv_cuda.h"
#include "ops/cuda/cuda_ops.h"
#endif

namespace lf::ops {

namespace {
// True when the (defined) tensors are on the GPU; fails on a mix of devices.
bool on_gpu(const char* op, std::initializer_list<const Tensor*> tensors) {
  int cpu = 0, gpu = 0;
  for (const Tensor* tensor : tensors) {
    if (!tensor->defined()) continue;
    (tensor->is_cuda() ? gpu : cpu) += 1;
  }
  LF_CHECK(cpu == 0 || gpu == 0, "{}: tensors on both the CPU and the GPU", op);
#if !LF_HAVE_CUDA
  LF_CHECK(gpu == 0, "{}: GPU tensors in a build without CUDA", op);
#endif
  return gpu > 0;
}
}  // namespace

// LF_IF_GPU(op, gpu_call, tensors...): returns gpu_call when the tensors are on the GPU. Without CUDA the call is
// not even compiled; GPU tensors then fail in on_gpu.
#if LF_HAVE_CUDA
#define LF_IF_GPU(op, gpu_call, ...) \
  if (on_gpu(op, {__VA_ARGS__})) return gpu_call
#else
#define LF_IF_GPU(op, gpu_call, ...) on_gpu(op, {__VA_ARGS__})
#endif

namespace {
thread_local const char* t_op_class = nullptr;
}

OpClassScope::OpClassScope(const char* op_class) : previous_(t_op_class) { t_op_class = op_class; }
OpClassScope::~OpClassScope() { t_op_class = previous_; }
const char* OpClassScope::current(const char* default_class) { return t_op_class ? t_op_class : default_class; }

DType activation_dtype(Device device) { return device == Device::CUDA ? DType::BF16 : DType::F32; }

#if !LF_HAVE_CUDA
int cuda_device_count() { return 0; }
std::string cuda_device_name() { return "none"; }
void initialize_cuda(int) { fail("this build has no CUDA backend (built without nvcc)"); }
void set_op_profiling(bool) {}
std::map<std::string, double> op_profile_ms() { return {}; }
DeviceMemoryStats device_memory_stats() { return {}; }
void reset_device_peak_memory() {}
void synchronize_device() {}
#endif

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation activation, bool f32_out) {
  (void)f32_out;  // the CPU computes f32 regardless
  LF_IF_GPU("linear", cuda::linear(x, weight, bias, activation, f32_out), &x, &weight, &bias);
  return activation == Activation::GeluTanh ? cpu::gelu_tanh(cpu::linear(x, weight, bias))
                                                 : cpu::linear(x, weight, bias);
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  LF_IF_GPU("layer_norm", cuda::layer_norm(x, weight, bias, eps), &x, &weight, &bias);
  return cpu::layer_norm(x, weight, bias, eps);
}

Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame,
                           double eps) {
  LF_IF_GPU("layer_norm_modulate", cuda::layer_norm_modulate(x, shift, scale, tokens_per_frame, eps), &x, &shift, &scale);
  return cpu::modulate(cpu::layer_norm(x, Tensor(), Tensor(), eps), shift, scale, tokens_per_frame);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  LF_IF_GPU("rms_norm", cuda::rms_norm(x, weight, eps), &x, &weight);
  return cpu::rms_norm(x, weight, eps);
}

Tensor gelu_tanh(const Tensor& x) {
  LF_CHECK(!x.is_cuda(), "gelu_tanh: on the GPU GELU is a GEMM epilogue (linear(..., Activation::GeluTanh))");
  return cpu::gelu_tanh(x);
}

Tensor silu(const Tensor& x) {
  LF_CHECK(!x.is_cuda(), "silu: the time MLP runs on the host");
  return cpu::silu(x);
}

Tensor modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame) {
  LF_CHECK(!x.is_cuda(), "modulate: use layer_norm_modulate on the GPU");
  return cpu::modulate(x, shift, scale, tokens_per_frame);
}

void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame) {
  LF_IF_GPU("gated_add", cuda::gated_add(x, y, gate, tokens_per_frame), &x, &y, &gate);
  cpu::gated_add(x, y, gate, tokens_per_frame);
}

void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions) {
  LF_IF_GPU("rope_apply", cuda::rope_apply(x, grid, frame_positions), &x);
  cpu::rope_apply(x, grid, frame_positions);
}

Tensor rope_apply_pooled(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions, int64_t block,
                         bool frame_aligned) {
  LF_CHECK(x.rank() == 3 && block > 0, "rope_apply_pooled: x {} and block {}", shape_str(x.shape()), block);
  LF_CHECK(!frame_aligned || x.dim(0) % grid.tokens_per_frame == 0,
           "rope_apply_pooled: {} tokens is not a whole number of frames of {}", x.dim(0), grid.tokens_per_frame);
  (void)frame_positions;  // used by the GPU call only (builds without CUDA compile it out)
  LF_IF_GPU("rope_apply_pooled", cuda::rope_apply_pooled(x, grid, frame_positions, block, frame_aligned), &x);
  fail("rope_apply_pooled runs on the GPU only: on the CPU, rope_apply and the planner's own pooling are the path");
}

RopeSplit rope_split(int64_t head_dim) {
  const int64_t pairs = head_dim / 2;
  const int64_t spatial = pairs / 3;
  return {pairs - 2 * spatial, spatial, spatial};
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  LF_IF_GPU("attention", cuda::attention(q, k, v, scale), &q, &k, &v);
  return cpu::attention(q, k, v, scale);
}

Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  LF_IF_GPU("attention_with_bias", cuda::attention_with_bias(q, k, v, bias, scale), &q, &k, &v, &bias);
  return cpu::attention_with_bias(q, k, v, bias, scale);
}

Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset) {
  LF_IF_GPU("relative_position_bias", cuda::relative_position_bias(table, bucket_of_offset), &table, &bucket_of_offset);
  return cpu::relative_position_bias(table, bucket_of_offset);
}

Tensor multiply(const Tensor& a, const Tensor& b) {
  LF_IF_GPU("multiply", cuda::multiply(a, b), &a, &b);
  return cpu::multiply(a, b);
}

namespace {
void check_block_sparse(const char* op, const Tensor& q, const Tensor& k, const Tensor* v,
                        const BlockSparseMaskView& mask) {
  LF_CHECK(q.rank() == 3 && k.rank() == 3 && q.dim(1) == k.dim(1) && q.dim(2) == k.dim(2) &&
               (v == nullptr || k.shape() == v->shape()),
           "{}: q {} k {} v {}", op, shape_str(q.shape()), shape_str(k.shape()),
           v ? shape_str(v->shape()) : std::string("-"));
  LF_CHECK(mask.heads == q.dim(1) && mask.geometry.query_tokens == q.dim(0) && mask.geometry.key_tokens() == k.dim(0),
           "{}: mask for {} heads, {} queries, {} keys; tensors have {}, {}, {}", op, mask.heads,
           mask.geometry.query_tokens, mask.geometry.key_tokens(), q.dim(1), q.dim(0), k.dim(0));
  LF_CHECK(mask.device == q.device() && mask.row_offsets != nullptr && mask.key_indices != nullptr,
           "{}: the mask's CSR must be on q's device ({}), found {}", op, device_name(q.device()),
           mask.row_offsets && mask.key_indices ? device_name(mask.device) : "none");
}
}  // namespace

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale) {
  check_block_sparse("block_sparse_attention", q, k, &v, mask);
  LF_IF_GPU("block_sparse_attention", cuda::block_sparse_attention(q, k, v, mask, scale), &q, &k, &v);
  return cpu::block_sparse_attention(q, k, v, mask, scale);
}

std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride) {
  check_block_sparse("block_sparse_recall", q, k, nullptr, mask);
  LF_CHECK(row_stride >= 1, "block_sparse_recall: row stride {} must be at least 1", row_stride);
  LF_IF_GPU("block_sparse_recall", cuda::block_sparse_recall(q, k, mask, scale, row_stride), &q, &k);
  return cpu::block_sparse_recall(q, k, mask, scale, row_stride);
}

Tensor timestep_embedding(double timestep, int64_t dim) { return cpu::timestep_embedding(timestep, dim); }

Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w) {
  LF_IF_GPU("patchify", cuda::patchify(latents, patch_h, patch_w), &latents);
  return cpu::patchify(latents, patch_h, patch_w);
}

Tensor unpatchify(const Tensor& tokens, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w) {
  LF_IF_GPU("unpatchify", cuda::unpatchify(tokens, frames, channels, grid_h, grid_w, patch_h, patch_w), &tokens);
  return cpu::unpatchify(tokens, frames, channels, grid_h, grid_w, patch_h, patch_w);
}

Tensor axpby(double a, const Tensor& x, double b, const Tensor& y) {
  LF_IF_GPU("axpby", cuda::axpby(a, x, b, y), &x, &y);
  return cpu::axpby(a, x, b, y);
}

Tensor convert(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  LF_IF_GPU("convert", cuda::convert(x, dtype), &x);
  return x.to(dtype);
}

void copy_rows(Tensor& dst, int64_t dst_row, const Tensor& src, int64_t src_row, int64_t rows) {
  LF_CHECK(dst.dtype() == src.dtype() && dst.rank() >= 1 && src.rank() >= 1 &&
               dst.numel() / std::max<int64_t>(dst.dim(0), 1) == src.numel() / std::max<int64_t>(src.dim(0), 1),
           "copy_rows: {} {} from {} {}", dtype_name(dst.dtype()), shape_str(dst.shape()), dtype_name(src.dtype()),
           shape_str(src.shape()));
  Tensor target = dst.slice_rows(dst_row, dst_row + rows);
  target.copy_from(src.slice_rows(src_row, src_row + rows));
}

// Decoder ops (docs/decoders.md): CPU references in ops/cpu/conv_cpu.cpp, GPU in ops/cuda/conv_cuda.cpp.
Tensor causal_conv3d(const Tensor& x, const Tensor& history, const Tensor& weight, const Tensor& bias,
                     const ConvEpilogue& epilogue) {
  const Tensor none;
  LF_IF_GPU("causal_conv3d", cuda::causal_conv3d(x, history, weight, bias, epilogue), &x, &history, &weight, &bias,
            epilogue.residual ? epilogue.residual : &none);
  return cpu::causal_conv3d(x, history, weight, bias, epilogue);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvEpilogue& epilogue) {
  const Tensor none;
  LF_IF_GPU("conv2d", cuda::conv2d(x, weight, bias, epilogue), &x, &weight, &bias,
            epilogue.residual ? epilogue.residual : &none);
  return cpu::conv2d(x, weight, bias, epilogue);
}

Tensor upsample_nearest2x(const Tensor& x) {
  LF_IF_GPU("upsample_nearest2x", cuda::upsample_nearest2x(x), &x);
  return cpu::upsample_nearest2x(x);
}

Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, double eps, bool then_silu) {
  LF_IF_GPU("channel_rms_norm", cuda::channel_rms_norm(x, gamma, eps, then_silu), &x, &gamma);
  return cpu::channel_rms_norm(x, gamma, eps, then_silu);
}

Tensor clamp_affine(const Tensor& x, float low, float high, float scale, float shift) {
  LF_IF_GPU("clamp_affine", cuda::clamp_affine(x, low, high, scale, shift), &x);
  return cpu::clamp_affine(x, low, high, scale, shift);
}

Tensor tanh_clamp(const Tensor& x, double limit) {
  LF_IF_GPU("tanh_clamp", cuda::tanh_clamp(x, limit), &x);
  return cpu::tanh_clamp(x, limit);
}

Tensor spatial_attention(const Tensor& qkv) {
  LF_IF_GPU("spatial_attention", cuda::spatial_attention(qkv), &qkv);
  return cpu::spatial_attention(qkv);
}

Tensor concat_channels(const Tensor& a, const Tensor& b) {
  LF_IF_GPU("concat_channels", cuda::concat_channels(a, b), &a, &b);
  return cpu::concat_channels(a, b);
}
}  // namespace lf::ops
