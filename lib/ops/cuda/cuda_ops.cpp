// GPU side of ops/ops.h: checks dtypes and shapes, allocates outputs through the caching allocator, launches the
// raw-pointer kernels of kernels/, and times each op by class while profiling is on.
#include "ops/cuda/cuda_ops.h"

#include <cmath>

#include "core/error.h"
#include "kernels/attention/flash_attention.h"
#include "kernels/device_info.h"
#include "kernels/gemm/batched_gemm.h"
#include "kernels/gemm/gemm.h"
#include "kernels/ops/axpby.h"
#include "kernels/ops/gpu_ops.h"
#include "kernels/ops/t5_ops.h"
#include "kernels/sparse/block_sparse_attention.h"
#include "kernels/sparse/sparse_planner.h"
#include "kernels/sparse/sparse_recall.h"
#include "kernels/speed_switches.h"
#include "ops/cuda/device_allocator.h"
#include "ops/cuda/op_timer.h"

namespace lf::ops {

int cuda_device_count() { return gpu::device_count(); }
std::string cuda_device_name() {
  return gpu::device_count() > 0 ? gpu::device_name(gpu::selected_device()) : "none";
}
void initialize_cuda(int device_index) { gpu::initialize_device_memory(device_index); }
void set_op_profiling(bool enabled) { gpu::op_timer_enable(enabled); }
std::map<std::string, double> op_profile_ms() { return gpu::op_timer_report_ms(); }
DeviceMemoryStats device_memory_stats() {
  const gpu::AllocatorStats stats = gpu::allocator_stats();
  return {stats.cuda_malloc_calls, stats.peak_in_use_bytes, stats.reserved_bytes};
}
void reset_device_peak_memory() { gpu::reset_peak_memory(); }
void synchronize_device() {
  if (device_allocator() != nullptr) gpu::op_timer_report_ms();  // synchronises
}

namespace cuda {

namespace {

void expect(const Tensor& tensor, DType dtype, const char* op, const char* what) {
  LF_CHECK(tensor.is_cuda() && tensor.dtype() == dtype, "{}: {} must be a {} GPU tensor, found {} on {}", op, what,
           dtype_name(dtype), dtype_name(tensor.dtype()), device_name(tensor.device()));
}

uint16_t* bf16(Tensor& tensor) { return static_cast<uint16_t*>(tensor.raw()); }
const uint16_t* bf16(const Tensor& tensor) { return static_cast<const uint16_t*>(tensor.raw()); }
float* f32(Tensor& tensor) { return static_cast<float*>(tensor.raw()); }
const float* f32(const Tensor& tensor) { return static_cast<const float*>(tensor.raw()); }

gpu::FrameRows frame_table(const Tensor& table, int64_t width, const char* op) {
  if (!table.defined()) return {};
  expect(table, DType::F32, op, "per-frame table");
  LF_CHECK(table.dim(-1) == width, "{}: table {} for width {}", op, shape_str(table.shape()), width);
  return gpu::frame_rows(f32(table), width);
}

// Dense rows [L, heads, head_dim] of bf16 q/k/v/out for the flash kernels (dense and block-sparse).
gpu::FlashAttentionParams flash_params(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out, double scale) {
  gpu::FlashAttentionParams params;
  params.q = q.raw();
  params.k = k.raw();
  params.v = v.raw();
  params.out = out.raw();
  params.q_row_stride = params.out_row_stride = q.dim(1) * q.dim(2);
  params.k_row_stride = params.v_row_stride = k.dim(1) * k.dim(2);
  params.lq = int(q.dim(0));
  params.lk = int(k.dim(0));
  params.heads = int(q.dim(1));
  params.head_dim = int(q.dim(2));
  params.scale = float(scale);
  return params;
}

int64_t width_of(const Tensor& x) { return x.dim(-1); }
int64_t rows_of(const Tensor& x) { return x.numel() / x.dim(-1); }

}  // namespace

void initialize() { gpu::initialize_device_memory(); }

Tensor convert(const Tensor& x, DType dtype) {
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  Tensor out = Tensor::empty(x.shape(), dtype, Device::CUDA);
  if (x.dtype() == DType::F32 && dtype == DType::BF16) {
    gpu::convert_f32_to_bf16(f32(x), x.numel(), bf16(out), nullptr);
  } else if (x.dtype() == DType::BF16 && dtype == DType::F32) {
    gpu::convert_bf16_to_f32(bf16(x), x.numel(), f32(out), nullptr);
  } else if (x.dtype() == DType::F8E4M3 && dtype == DType::BF16) {
    // The scales live on the host beside the tensor (Tensor::scales); a few KB go up with each conversion.
    const Tensor scales = x.scales() ? x.scales()->to(Device::CUDA) : Tensor();
    const int64_t rows = x.rank() >= 1 ? x.dim(0) : 1;
    gpu::dequantize_f8e4m3_rows(static_cast<const uint8_t*>(x.raw()), scales.defined() ? f32(scales) : nullptr,
                                scales.defined() ? scales.numel() : 0, rows, rows ? x.numel() / rows : 0, bf16(out),
                                nullptr);
  } else {
    fail("convert: {} -> {} is not supported on the GPU", dtype_name(x.dtype()), dtype_name(dtype));
  }
  return out;
}

Tensor linear(const Tensor& x_in, const Tensor& weight, const Tensor& bias_in, Activation activation, bool f32_out) {
  const Tensor x = x_in.dtype() == DType::BF16 ? x_in : convert(x_in, DType::BF16);
  expect(weight, DType::BF16, "linear", "weight");
  LF_CHECK(weight.rank() == 2 && width_of(x) == weight.dim(1), "linear: input {} does not match weight {}",
           shape_str(x.shape()), shape_str(weight.shape()));
  const DType out_dtype = f32_out ? DType::F32 : DType::BF16;
  // cuBLASLt's bias epilogue takes the bias in the output's type.
  Tensor bias;
  if (bias_in.defined()) bias = bias_in.dtype() == out_dtype ? bias_in : convert(bias_in, out_dtype);
  Shape out_shape = x.shape();
  out_shape.back() = weight.dim(0);
  Tensor y = Tensor::empty(out_shape, out_dtype, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("gemm"));
  gpu::GemmArgs args;
  args.x = bf16(x);
  args.weight = bf16(weight);
  args.bias = bias.defined() ? bias.raw() : nullptr;
  args.bias_type = f32_out ? gpu::GemmType::F32 : gpu::GemmType::BF16;
  args.y = y.raw();
  args.y_type = f32_out ? gpu::GemmType::F32 : gpu::GemmType::BF16;
  args.m = rows_of(x);
  args.n = weight.dim(0);
  args.k = weight.dim(1);
  args.epilogue = activation == Activation::GeluTanh ? gpu::GemmEpilogue::GeluTanh : gpu::GemmEpilogue::None;
  args.name = "linear";
  gpu::gemm_bf16(args);
  return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  expect(x, DType::F32, "layer_norm", "input");
  if (weight.defined()) expect(weight, DType::F32, "layer_norm", "weight");
  if (bias.defined()) expect(bias, DType::F32, "layer_norm", "bias");
  Tensor out = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));
  gpu::layer_norm_affine(f32(x), rows_of(x), width_of(x), weight.defined() ? f32(weight) : nullptr,
                         bias.defined() ? f32(bias) : nullptr, eps, bf16(out), nullptr);
  return out;
}

Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, int64_t tokens_per_frame,
                           double eps) {
  expect(x, DType::F32, "layer_norm_modulate", "input");
  const int64_t width = width_of(x), tokens = rows_of(x);
  check_shape(shift, {(tokens + tokens_per_frame - 1) / tokens_per_frame, width}, "layer_norm_modulate shift");
  check_shape(scale, shift.shape(), "layer_norm_modulate scale");
  Tensor out = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));
  gpu::layer_norm_modulate(f32(x), tokens, width, frame_table(shift, width, "layer_norm_modulate"),
                           frame_table(scale, width, "layer_norm_modulate"), tokens_per_frame, eps, bf16(out),
                           nullptr);
  return out;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  expect(x, DType::BF16, "rms_norm", "input");
  expect(weight, DType::F32, "rms_norm", "weight");
  LF_CHECK(weight.numel() == width_of(x), "rms_norm: weight {} for width {}", shape_str(weight.shape()), width_of(x));
  Tensor out = Tensor::empty(x.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));
  gpu::rms_norm(bf16(x), 0, rows_of(x), width_of(x), f32(weight), eps, bf16(out), 0, nullptr);
  return out;
}

void gated_add(Tensor& x, const Tensor& y, const Tensor& gate, int64_t tokens_per_frame) {
  expect(x, DType::F32, "gated_add", "residual");
  LF_CHECK(x.numel() == y.numel(), "gated_add: {} vs {}", shape_str(x.shape()), shape_str(y.shape()));
  const int64_t width = width_of(x), tokens = rows_of(x);
  const gpu::FrameRows rows = frame_table(gate, width, "gated_add");
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  if (y.dtype() == DType::BF16) gpu::gated_residual(f32(x), bf16(y), tokens, width, rows, tokens_per_frame, nullptr);
  else gpu::gated_residual_f32(f32(x), f32(y), tokens, width, rows, tokens_per_frame, nullptr);
}

static gpu::RopeLayout rope_layout(const Tensor& x, const RopeGrid& grid) {
  gpu::RopeLayout layout;
  layout.heads = x.dim(1);
  layout.head_dim = x.dim(2);
  layout.tokens_per_frame = grid.tokens_per_frame;
  layout.grid_width = grid.grid_width;
  layout.theta = grid.theta;
  return layout;
}

void rope_apply(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions) {
  LF_CHECK(x.rank() == 3, "rope_apply: expected [tokens, heads, head_dim], found {}", shape_str(x.shape()));
  const gpu::RopeLayout layout = rope_layout(x, grid);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));
  if (x.dtype() == DType::BF16)
    gpu::rope_apply(bf16(x), 0, x.dim(0), layout, frame_positions.data(), int64_t(frame_positions.size()), nullptr);
  else
    gpu::rope_apply_f32(f32(x), 0, x.dim(0), layout, frame_positions.data(), int64_t(frame_positions.size()),
                        nullptr);
}

Tensor rope_apply_pooled(Tensor& x, const RopeGrid& grid, const std::vector<int64_t>& frame_positions, int64_t block,
                         bool frame_aligned) {
  expect(x, DType::BF16, "rope_apply_pooled", "x");
  const gpu::RopeLayout layout = rope_layout(x, grid);
  const int64_t blocks = gpu::sparse::rope_pool_blocks(x.dim(0), grid.tokens_per_frame, int(block), frame_aligned);
  Tensor pooled = Tensor::empty({x.dim(1), blocks, x.dim(2)}, DType::F32, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("norm"));  // it replaces the rope_apply pass of the same class
  gpu::sparse::rope_and_pool(bf16(x), 0, x.dim(0), layout, frame_positions.data(), int64_t(frame_positions.size()),
                             int(block), frame_aligned, f32(pooled), nullptr);
  return pooled;
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  for (const Tensor* t : {&q, &k, &v}) expect(*t, DType::BF16, "attention", "q/k/v");
  LF_CHECK(q.rank() == 3 && k.shape() == v.shape() && k.rank() == 3 && q.dim(1) == k.dim(1) && q.dim(2) == k.dim(2),
           "attention: q {} k {} v {}", shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
  Tensor out = Tensor::empty(q.shape(), DType::BF16, Device::CUDA);
  const gpu::FlashAttentionParams params = flash_params(q, k, v, out, scale);
  const gpu::ScopedOpTimer timed(OpClassScope::current("attention"));
  gpu::flash_attention_forward(params);
  return out;
}

Tensor block_sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockSparseMaskView& mask,
                              double scale) {
  for (const Tensor* t : {&q, &k, &v}) expect(*t, DType::BF16, "block_sparse_attention", "q/k/v");
  Tensor out = Tensor::empty(q.shape(), DType::BF16, Device::CUDA);
  const gpu::FlashAttentionParams params = flash_params(q, k, v, out, scale);
  gpu::BlockSparseLayout layout;
  layout.row_offsets = mask.row_offsets;
  layout.key_indices = mask.key_indices;
  layout.query_block = int(mask.geometry.query_block);
  layout.key_block = int(mask.geometry.key_block);
  layout.tokens_per_frame = int(mask.geometry.tokens_per_frame);
  layout.heads = int(mask.heads);
  layout.query_blocks = int(mask.geometry.query_blocks());
  const gpu::ScopedOpTimer timed(OpClassScope::current("attention"));
  gpu::flash_attention_block_sparse_forward(params, layout);
  return out;
}

std::vector<double> block_sparse_recall(const Tensor& q, const Tensor& k, const BlockSparseMaskView& mask,
                                        double scale, int64_t row_stride) {
  for (const Tensor* t : {&q, &k}) expect(*t, DType::BF16, "block_sparse_recall", "q/k");
  const int64_t heads = q.dim(1), head_dim = q.dim(2);
  gpu::sparse::PlannerGeometry geometry;
  geometry.heads = int(heads);
  geometry.head_dim = int(head_dim);
  geometry.query_tokens = int(q.dim(0));
  geometry.query_block = int(mask.geometry.query_block);
  geometry.key_frames = int(mask.geometry.key_frames);
  geometry.tokens_per_frame = int(mask.geometry.tokens_per_frame);
  geometry.key_block = int(mask.geometry.key_block);
  const int sampled = gpu::sparse::recall_sampled_rows(geometry.query_tokens, int(row_stride));
  Tensor rows = Tensor::empty({heads, int64_t(sampled)}, DType::F32, Device::CUDA);
  gpu::sparse::sampled_recall(q.raw(), heads * head_dim, k.raw(), heads * head_dim, geometry, mask.row_offsets,
                              mask.key_indices, int(row_stride), float(scale), f32(rows));
  // Per-row values come back and are summed here in a fixed order, so the statistic is deterministic.
  const Tensor host = rows.to(Device::CPU);
  std::vector<double> recall(size_t(heads), 0.0);
  for (int64_t h = 0; h < heads; ++h) {
    double sum = 0;
    for (int r = 0; r < sampled; ++r) sum += double(host.f32()[h * sampled + r]);
    recall[size_t(h)] = sum / double(sampled);
  }
  return recall;
}

Tensor patchify(const Tensor& latents, int64_t patch_h, int64_t patch_w) {
  expect(latents, DType::F32, "patchify", "latents");
  LF_CHECK(latents.rank() == 4, "patchify: expected [frames, channels, height, width], found {}",
           shape_str(latents.shape()));
  const int64_t frames = latents.dim(0), channels = latents.dim(1), height = latents.dim(2), width = latents.dim(3);
  Tensor tokens = Tensor::empty({frames * (height / patch_h) * (width / patch_w), channels * patch_h * patch_w},
                                DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::patchify(f32(latents), frames, channels, height, width, patch_h, patch_w, bf16(tokens), nullptr);
  return tokens;
}

Tensor unpatchify(const Tensor& tokens_in, int64_t frames, int64_t channels, int64_t grid_h, int64_t grid_w,
                  int64_t patch_h, int64_t patch_w) {
  const Tensor tokens = tokens_in.dtype() == DType::F32 ? tokens_in : convert(tokens_in, DType::F32);
  check_shape(tokens, {frames * grid_h * grid_w, patch_h * patch_w * channels}, "unpatchify input");
  Tensor latents = Tensor::empty({frames, channels, grid_h * patch_h, grid_w * patch_w}, DType::F32, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::unpatchify(f32(tokens), frames, channels, grid_h, grid_w, patch_h, patch_w, f32(latents), nullptr);
  return latents;
}

Tensor axpby(double a, const Tensor& x, double b, const Tensor& y) {
  expect(x, DType::F32, "axpby", "x");
  expect(y, DType::F32, "axpby", "y");
  LF_CHECK(x.shape() == y.shape(), "axpby: {} vs {}", shape_str(x.shape()), shape_str(y.shape()));
  Tensor out = Tensor::empty(x.shape(), DType::F32, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::axpby(a, f32(x), b, f32(y), f32(out), x.numel(), nullptr);
  return out;
}

// umT5: q/k/v bf16 (GEMM outputs), bias f32 [H, Lq, Lk]; out bf16.
Tensor attention_with_bias(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, double scale) {
  expect(q, DType::BF16, "attention_with_bias", "q");
  expect(k, DType::BF16, "attention_with_bias", "k");
  expect(v, DType::BF16, "attention_with_bias", "v");
  expect(bias, DType::F32, "attention_with_bias", "bias");
  LF_CHECK(q.rank() == 3, "attention_with_bias: q must be [tokens, heads, head_dim], found {}", shape_str(q.shape()));
  const int64_t lq = q.dim(0), heads = q.dim(1), head_dim = q.dim(2), lk = k.dim(0);
  check_shape(k, {lk, heads, head_dim}, "attention_with_bias k");
  check_shape(v, {lk, heads, head_dim}, "attention_with_bias v");
  check_shape(bias, {heads, lq, lk}, "attention_with_bias bias");
  const gpu::ScopedOpTimer timed(OpClassScope::current("attention"));
  if (gpu::speed_switches().t5_attention_gemm) {
    // S[h] = scale Q[h] K[h]^T (bf16 products, fp32 out), P = softmax(S + bias) in place, O[h] = P[h] V[h] with
    // fp32 operands (V widened exactly), out = bf16(O): one rounding, like the fused kernel.
    const int64_t row = heads * head_dim;
    Tensor s = Tensor::empty({heads, lq, lk}, DType::F32, Device::CUDA);
    gpu::gemm_strided_batched({.a = q.raw(), .b = k.raw(), .c = f32(s), .operands = gpu::GemmType::BF16,
                               .b_transposed = true, .m = lq, .n = lk, .k = head_dim, .batch = heads, .lda = row,
                               .ldb = row, .ldc = lk, .stride_a = head_dim, .stride_b = head_dim,
                               .stride_c = lq * lk, .alpha = float(scale), .name = "attention_with_bias scores"});
    gpu::softmax_rows_with_bias(f32(s), f32(bias), heads * lq, lk, nullptr);
    const Tensor v32 = convert(v, DType::F32);
    Tensor o = Tensor::empty({lq, heads, head_dim}, DType::F32, Device::CUDA);
    gpu::gemm_strided_batched({.a = s.raw(), .b = v32.raw(), .c = f32(o), .operands = gpu::GemmType::F32,
                               .m = lq, .n = head_dim, .k = lk, .batch = heads, .lda = lk, .ldb = row, .ldc = row,
                               .stride_a = lq * lk, .stride_b = head_dim, .stride_c = head_dim,
                               .name = "attention_with_bias P V"});
    return convert(o, DType::BF16);
  }
  Tensor out = Tensor::empty(q.shape(), DType::BF16, Device::CUDA);
  gpu::attention_with_bias(bf16(q), bf16(k), bf16(v), f32(bias), lq, lk, heads, head_dim, scale, bf16(out), nullptr);
  return out;
}

Tensor relative_position_bias(const Tensor& table, const Tensor& bucket_of_offset) {
  expect(table, DType::F32, "relative_position_bias", "table");
  expect(bucket_of_offset, DType::I32, "relative_position_bias", "bucket_of_offset");
  LF_CHECK(table.rank() == 2 && bucket_of_offset.rank() == 1 && bucket_of_offset.dim(0) % 2 == 1,
           "relative_position_bias: table {} and bucket_of_offset {} are not [buckets, heads] and [2 tokens - 1]",
           shape_str(table.shape()), shape_str(bucket_of_offset.shape()));
  // The buckets are not range-checked here (they are on the device): the model's bucketing keeps them inside the
  // table by construction (umt5_position_bucket), and the CPU reference checks them.
  const int64_t heads = table.dim(1), tokens = (bucket_of_offset.dim(0) + 1) / 2;
  Tensor bias = Tensor::empty({heads, tokens, tokens}, DType::F32, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::relative_position_bias(f32(table), static_cast<const int32_t*>(bucket_of_offset.raw()), heads, tokens,
                              f32(bias), nullptr);
  return bias;
}

Tensor multiply(const Tensor& a, const Tensor& b) {
  expect(a, DType::BF16, "multiply", "a");
  expect(b, DType::BF16, "multiply", "b");
  LF_CHECK(a.shape() == b.shape(), "multiply: shapes {} and {} differ", shape_str(a.shape()), shape_str(b.shape()));
  Tensor out = Tensor::empty(a.shape(), DType::BF16, Device::CUDA);
  const gpu::ScopedOpTimer timed(OpClassScope::current("other"));
  gpu::multiply_bf16(bf16(a), bf16(b), a.numel(), bf16(out), nullptr);
  return out;
}

}  // namespace cuda
}  // namespace lf::ops
