// Every GPU op of kernels/ops and the cuBLASLt GEMM against the CPU reference ops (lib/ops) on the same inputs,
// table-driven (one row per op x shape, in the spirit of ggml's test-backend-ops). Inputs are fresh random values,
// rounded to bf16 where the GPU op reads bf16, so both sides compute the same function; outputs are poisoned (NaN)
// before each run so an element the GPU never wrote fails. Shapes: ragged ones (tokens 77, width 160 or 90: no
// multiple of any tile, warp or vector size) and the DiT's (4680 tokens x 1536, 12 heads x 128, 30 x 52 grid).
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/gemm/gemm.h"
#include "kernels/ops/gpu_ops.h"
#include "ops/cuda/op_timer.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace lf;
using test::random_tensor;
using test::rel_l2;

namespace {

void cuda_ok(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("{}: {}", what, cudaGetErrorString(status));
}

// Device memory filled with 0xff bytes: NaN as fp32 and as bf16, so unwritten outputs never pass.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    cuda_ok(cudaMalloc(&pointer_, bytes > 0 ? bytes : 1), "cudaMalloc");
    cuda_ok(cudaMemset(pointer_, 0xff, bytes), "cudaMemset");
  }
  ~DeviceBuffer() { cudaFree(pointer_); }
  DeviceBuffer(DeviceBuffer&& other) noexcept : pointer_(other.pointer_), bytes_(other.bytes_) {
    other.pointer_ = nullptr;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(pointer_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* pointer_ = nullptr;
  size_t bytes_;
};

Tensor round_bf16(const Tensor& x) {
  Tensor out = x.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] = round_to_bf16(out.f32()[i]);
  return out;
}

DeviceBuffer upload_f32(const Tensor& x) {
  DeviceBuffer buffer(size_t(x.numel()) * 4);
  cuda_ok(cudaMemcpy(buffer.as<void>(), x.f32(), buffer.bytes(), cudaMemcpyHostToDevice), "upload");
  return buffer;
}

DeviceBuffer upload_bf16(const Tensor& x) {
  std::vector<uint16_t> bits(size_t(x.numel()));
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = f32_to_bf16(x.f32()[i]);
  DeviceBuffer buffer(bits.size() * 2);
  cuda_ok(cudaMemcpy(buffer.as<void>(), bits.data(), buffer.bytes(), cudaMemcpyHostToDevice), "upload");
  return buffer;
}

Tensor download_f32(const void* device, const Shape& shape) {
  cuda_ok(cudaDeviceSynchronize(), "GPU op");
  Tensor out = Tensor::empty(shape);
  cuda_ok(cudaMemcpy(out.f32(), device, size_t(out.numel()) * 4, cudaMemcpyDeviceToHost), "download");
  return out;
}

Tensor download_bf16(const void* device, const Shape& shape) {
  cuda_ok(cudaDeviceSynchronize(), "GPU op");
  Tensor out = Tensor::empty(shape);
  std::vector<uint16_t> bits(size_t(out.numel()));
  cuda_ok(cudaMemcpy(bits.data(), device, bits.size() * 2, cudaMemcpyDeviceToHost), "download");
  for (size_t i = 0; i < bits.size(); ++i) out.f32()[i] = bf16_to_f32(bits[i]);
  return out;
}

// Slot `slot` of a [frames, slots, width] table as a contiguous [frames, width] tensor (what the CPU ops take).
Tensor slot_of(const Tensor& table, int64_t slot) {
  const int64_t frames = table.dim(0), slots = table.dim(1), width = table.dim(2);
  Tensor out = Tensor::empty({frames, width});
  for (int64_t f = 0; f < frames; ++f)
    std::memcpy(out.f32() + f * width, table.f32() + (f * slots + slot) * width, size_t(width) * 4);
  return out;
}

// Rows of a wider [rows, stride] matrix starting at column `first`, `width` wide, as a contiguous tensor.
Tensor columns_of(const Tensor& x, int64_t first, int64_t width) {
  const int64_t rows = x.dim(0), stride = x.dim(1);
  Tensor out = Tensor::empty({rows, width});
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(out.f32() + r * width, x.f32() + r * stride + first, size_t(width) * 4);
  return out;
}

// Counts elements outside columns [first, first + width) that are not NaN (written when they should not be).
int64_t written_outside(const Tensor& x, int64_t first, int64_t width) {
  int64_t count = 0;
  for (int64_t r = 0; r < x.dim(0); ++r)
    for (int64_t c = 0; c < x.dim(1); ++c)
      if ((c < first || c >= first + width) && !std::isnan(x.f32()[r * x.dim(1) + c])) ++count;
  return count;
}

// Random values with a large common offset, so a LayerNorm that does not centre (or centres badly) fails.
Tensor residual_like(const Shape& shape, uint64_t seed) {
  Tensor x = random_tensor(shape, seed, 3.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += 5.0f;
  return x;
}

constexpr double kEps = 1e-6;
constexpr double kBf16Tolerance = 1e-2;  // one bf16 rounding of the output: ~2e-3 in practice
constexpr double kF32Tolerance = 1e-5;   // fp32 on the GPU from identical inputs

struct OpCheck {
  std::string op, shape;
  double tolerance;
  std::function<double()> run;  // rel-L2 of the GPU result against the CPU reference
};

struct RowShape {
  int64_t tokens, width, tokens_per_frame;
};
// Ragged multi-frame (last frame partial), odd width (scalar path), too wide for registers, and the DiT's chunk.
const RowShape kRowShapes[] = {{77, 160, 20}, {33, 90, 11}, {19, 2600, 7}, {4680, 1536, 1560}};

std::string row_shape_name(const RowShape& s) {
  return fmt::format("tokens {} width {} tpf {}", s.tokens, s.width, s.tokens_per_frame);
}

void add_norm_checks(std::vector<OpCheck>& checks) {
  for (const RowShape& s : kRowShapes) {
    const int64_t frames = (s.tokens + s.tokens_per_frame - 1) / s.tokens_per_frame;
    checks.push_back({"modulation_table (block, 6 slots)", fmt::format("frames {} width {}", frames, s.width),
                      kF32Tolerance, [=] {
      const Tensor base = random_tensor({6, s.width}, 11), e0 = random_tensor({frames, 6, s.width}, 12);
      Tensor expected = Tensor::empty({frames, 6, s.width});
      for (int64_t i = 0; i < expected.numel(); ++i) expected.f32()[i] = base.f32()[i % (6 * s.width)] + e0.f32()[i];
      DeviceBuffer dbase = upload_f32(base), de0 = upload_f32(e0), out(size_t(expected.numel()) * 4);
      gpu::modulation_table(dbase.as<float>(), de0.as<float>(), 6 * s.width, s.width, frames, 6, s.width,
                            out.as<float>(), nullptr);
      return rel_l2(download_f32(out.as<void>(), expected.shape()), expected);
    }});
    checks.push_back({"modulation_table (head, e broadcast)", fmt::format("frames {} width {}", frames, s.width),
                      kF32Tolerance, [=] {
      const Tensor base = random_tensor({2, s.width}, 13), e = random_tensor({frames, s.width}, 14);
      Tensor expected = Tensor::empty({frames, 2, s.width});
      for (int64_t f = 0; f < frames; ++f)
        for (int64_t slot = 0; slot < 2; ++slot)
          for (int64_t i = 0; i < s.width; ++i)
            expected.f32()[(f * 2 + slot) * s.width + i] = base.f32()[slot * s.width + i] + e.f32()[f * s.width + i];
      DeviceBuffer dbase = upload_f32(base), de = upload_f32(e), out(size_t(expected.numel()) * 4);
      gpu::modulation_table(dbase.as<float>(), de.as<float>(), s.width, 0, frames, 2, s.width, out.as<float>(),
                            nullptr);
      return rel_l2(download_f32(out.as<void>(), expected.shape()), expected);
    }});
    checks.push_back({"layer_norm_modulate", row_shape_name(s), kBf16Tolerance, [=] {
      const Tensor x = residual_like({s.tokens, s.width}, 21), table = random_tensor({frames, 6, s.width}, 22, 0.5f);
      const Tensor expected = ops::modulate(ops::layer_norm(x, Tensor(), Tensor(), kEps), slot_of(table, 3),
                                            slot_of(table, 4), s.tokens_per_frame);
      DeviceBuffer dx = upload_f32(x), dtable = upload_f32(table), out(size_t(x.numel()) * 2);
      gpu::layer_norm_modulate(dx.as<float>(), s.tokens, s.width, gpu::table_slot(dtable.as<float>(), 6, s.width, 3),
                               gpu::table_slot(dtable.as<float>(), 6, s.width, 4), s.tokens_per_frame, kEps,
                               out.as<uint16_t>(), nullptr);
      return rel_l2(download_bf16(out.as<void>(), x.shape()), expected);
    }});
    for (bool affine : {true, false})
      checks.push_back({affine ? "layer_norm_affine" : "layer_norm_affine (no affine)", row_shape_name(s),
                        kBf16Tolerance, [=] {
        const Tensor x = residual_like({s.tokens, s.width}, 31);
        const Tensor w = affine ? random_tensor({s.width}, 32) : Tensor();
        const Tensor b = affine ? random_tensor({s.width}, 33) : Tensor();
        const Tensor expected = ops::layer_norm(x, w, b, kEps);
        const Tensor unused = random_tensor({1}, 34);
        DeviceBuffer dx = upload_f32(x), dw = upload_f32(affine ? w : unused), db = upload_f32(affine ? b : unused);
        DeviceBuffer out(size_t(x.numel()) * 2);
        gpu::layer_norm_affine(dx.as<float>(), s.tokens, s.width, affine ? dw.as<float>() : nullptr,
                               affine ? db.as<float>() : nullptr, kEps, out.as<uint16_t>(), nullptr);
        return rel_l2(download_bf16(out.as<void>(), x.shape()), expected);
      }});
    checks.push_back({"rms_norm", row_shape_name(s), kBf16Tolerance, [=] {
      const Tensor x = round_bf16(random_tensor({s.tokens, s.width}, 41, 4.0f)), w = random_tensor({s.width}, 42);
      const Tensor expected = ops::rms_norm(x, w, kEps);
      DeviceBuffer dx = upload_bf16(x), dw = upload_f32(w), out(size_t(x.numel()) * 2);
      gpu::rms_norm(dx.as<uint16_t>(), 0, s.tokens, s.width, dw.as<float>(), kEps, out.as<uint16_t>(), 0, nullptr);
      return rel_l2(download_bf16(out.as<void>(), x.shape()), expected);
    }});
  }
  // q/k read out of a fused qkv output (k = middle third), written into the first half of a wider buffer.
  for (int64_t width : {int64_t(160), int64_t(1536)})
    checks.push_back({"rms_norm (strided: k of fused qkv)", fmt::format("tokens 77 width {}", width), kBf16Tolerance,
                      [=] {
      const Tensor qkv = round_bf16(random_tensor({77, 3 * width}, 43, 4.0f)), w = random_tensor({width}, 44);
      const Tensor expected = ops::rms_norm(columns_of(qkv, width, width), w, kEps);
      DeviceBuffer dqkv = upload_bf16(qkv), dw = upload_f32(w), out(size_t(77 * 2 * width) * 2);
      gpu::rms_norm(dqkv.as<uint16_t>() + width, 3 * width, 77, width, dw.as<float>(), kEps, out.as<uint16_t>(),
                    2 * width, nullptr);
      const Tensor result = download_bf16(out.as<void>(), {77, 2 * width});
      return written_outside(result, 0, width) == 0 ? rel_l2(columns_of(result, 0, width), expected) : INFINITY;
    }});
}

struct RopeShape {
  int64_t heads, head_dim, tokens_per_frame, grid_width;
  std::vector<int64_t> positions;  // one per frame
  int64_t tokens;
};

void add_rope_checks(std::vector<OpCheck>& checks) {
  std::vector<int64_t> many_frames(70);  // more frames than one launch takes: the call is split
  for (size_t f = 0; f < many_frames.size(); ++f) many_frames[f] = int64_t(3 * f + 1);
  const std::vector<RopeShape> shapes = {
      {3, 12, 20, 5, {5, 9, 2, 1000}, 77},     // ragged: 4 frames, the last partial; a far temporal position
      {2, 8, 6, 3, many_frames, 6 * 70 - 1},   // 70 frames
      {3, 6, 10, 5, {0, 7}, 20},               // head_dim 6: 2-element vectors, one pair per axis
      {12, 128, 1560, 52, {3, 4, 5}, 4680},    // the DiT: chunk 1 of Self-Forcing
      {12, 128, 1560, 52, {100000, 100001, 100002}, 4680},  // positions of a very long video
  };
  for (const RopeShape& s : shapes) {
    const std::string name = fmt::format("tokens {} heads {} x {} grid {}/{} frame0 {}", s.tokens, s.heads,
                                         s.head_dim, s.tokens_per_frame, s.grid_width, s.positions[0]);
    const gpu::RopeLayout layout{s.heads, s.head_dim, s.tokens_per_frame, s.grid_width, 10000.0};
    const ops::RopeGrid grid{s.tokens_per_frame, s.grid_width, 10000.0};
    const int64_t width = s.heads * s.head_dim, frames = int64_t(s.positions.size());
    checks.push_back({"rope_apply (bf16)", name, kBf16Tolerance, [=] {
      const Tensor x = round_bf16(random_tensor({s.tokens, s.heads, s.head_dim}, 51));
      Tensor expected = x.clone();
      ops::rope_apply(expected, grid, s.positions);
      DeviceBuffer dx = upload_bf16(x);
      gpu::rope_apply(dx.as<uint16_t>(), 0, s.tokens, layout, s.positions.data(), frames, nullptr);
      return rel_l2(download_bf16(dx.as<void>(), x.shape()), expected);
    }});
    checks.push_back({"rope_apply_f32", name, kF32Tolerance, [=] {
      const Tensor x = random_tensor({s.tokens, s.heads, s.head_dim}, 52);
      Tensor expected = x.clone();
      ops::rope_apply(expected, grid, s.positions);
      DeviceBuffer dx = upload_f32(x);
      gpu::rope_apply_f32(dx.as<float>(), 0, s.tokens, layout, s.positions.data(), frames, nullptr);
      return rel_l2(download_f32(dx.as<void>(), x.shape()), expected);
    }});
    checks.push_back({"rms_norm_rope (strided input)", name, kBf16Tolerance, [=] {
      const Tensor qkv = round_bf16(random_tensor({s.tokens, 3 * width}, 53, 4.0f)), w = random_tensor({width}, 54);
      Tensor expected = ops::rms_norm(columns_of(qkv, width, width), w, kEps).reshape({s.tokens, s.heads, s.head_dim});
      ops::rope_apply(expected, grid, s.positions);
      DeviceBuffer dqkv = upload_bf16(qkv), dw = upload_f32(w), out(size_t(s.tokens * width) * 2);
      gpu::rms_norm_rope(dqkv.as<uint16_t>() + width, 3 * width, s.tokens, dw.as<float>(), kEps, layout,
                         s.positions.data(), frames, out.as<uint16_t>(), 0, nullptr);
      return rel_l2(download_bf16(out.as<void>(), expected.shape()), expected);
    }});
  }
}

void add_elementwise_checks(std::vector<OpCheck>& checks) {
  for (const RowShape& s : kRowShapes) {
    const int64_t frames = (s.tokens + s.tokens_per_frame - 1) / s.tokens_per_frame;
    for (bool gated : {true, false})
      for (bool bf16_y : {true, false})
        checks.push_back({fmt::format("gated_residual{}{}", bf16_y ? "" : "_f32", gated ? "" : " (no gate)"),
                          row_shape_name(s), kF32Tolerance, [=] {
          const Tensor x = residual_like({s.tokens, s.width}, 61), table = random_tensor({frames, 6, s.width}, 62);
          const Tensor y_f32 = random_tensor({s.tokens, s.width}, 63);
          const Tensor y = bf16_y ? round_bf16(y_f32) : y_f32;
          Tensor expected = x.clone();
          ops::gated_add(expected, y, gated ? slot_of(table, 2) : Tensor(), s.tokens_per_frame);
          DeviceBuffer dx = upload_f32(x), dtable = upload_f32(table);
          const gpu::FrameRows gate = gated ? gpu::table_slot(dtable.as<float>(), 6, s.width, 2) : gpu::FrameRows{};
          if (bf16_y) {
            DeviceBuffer dy = upload_bf16(y);
            gpu::gated_residual(dx.as<float>(), dy.as<uint16_t>(), s.tokens, s.width, gate, s.tokens_per_frame,
                                nullptr);
            return rel_l2(download_f32(dx.as<void>(), x.shape()), expected);
          }
          DeviceBuffer dy = upload_f32(y);
          gpu::gated_residual_f32(dx.as<float>(), dy.as<float>(), s.tokens, s.width, gate, s.tokens_per_frame,
                                  nullptr);
          return rel_l2(download_f32(dx.as<void>(), x.shape()), expected);
        }});
    checks.push_back({"add_row_vector", row_shape_name(s), kF32Tolerance, [=] {
      const Tensor x = random_tensor({s.tokens, s.width}, 64), row = random_tensor({s.width}, 65);
      Tensor expected = x.clone();
      for (int64_t i = 0; i < x.numel(); ++i) expected.f32()[i] += row.f32()[i % s.width];
      DeviceBuffer dx = upload_f32(x), drow = upload_f32(row);
      gpu::add_row_vector(dx.as<float>(), s.tokens, s.width, drow.as<float>(), nullptr);
      return rel_l2(download_f32(dx.as<void>(), x.shape()), expected);
    }});
    const int64_t count = s.tokens * s.width;
    checks.push_back({"gelu_tanh_inplace", row_shape_name(s), kBf16Tolerance, [=] {
      const Tensor x = round_bf16(random_tensor({count}, 66, 4.0f));
      const Tensor expected = ops::gelu_tanh(x);
      DeviceBuffer dx = upload_bf16(x);
      gpu::gelu_tanh_inplace(dx.as<uint16_t>(), count, nullptr);
      return rel_l2(download_bf16(dx.as<void>(), x.shape()), expected);
    }});
    checks.push_back({"silu_to_bf16", row_shape_name(s), kBf16Tolerance, [=] {
      const Tensor x = random_tensor({count}, 67, 6.0f);
      const Tensor expected = ops::silu(x);
      DeviceBuffer dx = upload_f32(x), out(size_t(count) * 2);
      gpu::silu_to_bf16(dx.as<float>(), count, out.as<uint16_t>(), nullptr);
      return rel_l2(download_bf16(out.as<void>(), x.shape()), expected);
    }});
    checks.push_back({"convert f32 -> bf16 -> f32 (exact RNE)", row_shape_name(s), 0.0, [=] {
      const Tensor x = random_tensor({count}, 68, 100.0f);
      DeviceBuffer dx = upload_f32(x), bf16(size_t(count) * 2), back(size_t(count) * 4);
      gpu::convert_f32_to_bf16(dx.as<float>(), count, bf16.as<uint16_t>(), nullptr);
      gpu::convert_bf16_to_f32(bf16.as<uint16_t>(), count, back.as<float>(), nullptr);
      const double rel = rel_l2(download_f32(back.as<void>(), x.shape()), round_bf16(x));
      return rel == 0.0 ? -1.0 : rel;  // bit-exact required: report -1 (< 0 tolerance) on exact equality
    }});
  }
}

void add_layout_checks(std::vector<OpCheck>& checks) {
  struct PatchShape {
    int64_t frames, channels, height, width, patch_h, patch_w;
  };
  const PatchShape shapes[] = {{2, 3, 10, 6, 2, 2}, {1, 5, 9, 8, 3, 4}, {3, 16, 60, 104, 2, 2}};  // last: Wan's
  for (const PatchShape& s : shapes) {
    const std::string name = fmt::format("[{}, {}, {}, {}] patch {}x{}", s.frames, s.channels, s.height, s.width,
                                         s.patch_h, s.patch_w);
    const int64_t gh = s.height / s.patch_h, gw = s.width / s.patch_w, dim = s.channels * s.patch_h * s.patch_w;
    checks.push_back({"patchify (exact)", name, 0.0, [=] {
      const Tensor latents = random_tensor({s.frames, s.channels, s.height, s.width}, 71);
      const Tensor expected = round_bf16(ops::patchify(latents, s.patch_h, s.patch_w));
      DeviceBuffer dl = upload_f32(latents), out(size_t(expected.numel()) * 2);
      gpu::patchify(dl.as<float>(), s.frames, s.channels, s.height, s.width, s.patch_h, s.patch_w,
                    out.as<uint16_t>(), nullptr);
      const double rel = rel_l2(download_bf16(out.as<void>(), expected.shape()), expected);
      return rel == 0.0 ? -1.0 : rel;
    }});
    checks.push_back({"unpatchify (exact)", name, 0.0, [=] {
      const Tensor tokens = random_tensor({s.frames * gh * gw, dim}, 72);
      const Tensor expected = ops::unpatchify(tokens, s.frames, s.channels, gh, gw, s.patch_h, s.patch_w);
      DeviceBuffer dt = upload_f32(tokens), out(size_t(expected.numel()) * 4);
      gpu::unpatchify(dt.as<float>(), s.frames, s.channels, gh, gw, s.patch_h, s.patch_w, out.as<float>(), nullptr);
      const double rel = rel_l2(download_f32(out.as<void>(), expected.shape()), expected);
      return rel == 0.0 ? -1.0 : rel;
    }});
  }
  checks.push_back({"copy_rows (v out of fused qkv, exact)", "rows 77 width 160", 0.0, [] {
    const Tensor qkv = random_tensor({77, 480}, 73);
    const Tensor expected = columns_of(qkv, 320, 160);
    DeviceBuffer dqkv = upload_f32(qkv), out(size_t(77 * 160) * 4);
    gpu::copy_rows(out.as<void>(), 160 * 4, dqkv.as<float>() + 320, 480 * 4, 160 * 4, 77, nullptr);
    const double rel = rel_l2(download_f32(out.as<void>(), expected.shape()), expected);
    return rel == 0.0 ? -1.0 : rel;
  }});
}

struct GemmCase {
  int64_t m, n, k;
  bool bias;
  gpu::GemmType y_type;
  gpu::GemmEpilogue epilogue;
  bool accumulate;
  bool strided;  // x rows padded, y written into the middle third of a 3n-wide buffer
};

double gelu_erf(double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); }

// Returns {rel-L2 against the reference, rel-L2 against erf GELU (or -1)}.
std::pair<double, double> run_gemm(const GemmCase& c) {
  const bool bf16_out = c.y_type == gpu::GemmType::BF16;
  const int64_t x_stride = c.strided ? c.k + 8 : c.k, y_stride = c.strided ? 3 * c.n : c.n;
  const int64_t y_first = c.strided ? c.n : 0;
  const Tensor x = round_bf16(random_tensor({c.m, x_stride}, 81)), w = round_bf16(random_tensor({c.n, c.k}, 82, 0.2f));
  Tensor bias = random_tensor({c.n}, 83);
  if (bf16_out) bias = round_bf16(bias);
  Tensor y0 = random_tensor({c.m, y_stride}, 84);
  if (bf16_out) y0 = round_bf16(y0);
  Tensor expected = ops::linear(columns_of(x, 0, c.k), w, c.bias ? bias : Tensor());
  Tensor expected_erf = expected.clone();
  if (c.accumulate) {
    const Tensor before = columns_of(y0, y_first, c.n);
    for (int64_t i = 0; i < expected.numel(); ++i) expected.f32()[i] += before.f32()[i];
  }
  if (c.epilogue == gpu::GemmEpilogue::GeluTanh) {
    for (int64_t i = 0; i < expected.numel(); ++i) expected_erf.f32()[i] = float(gelu_erf(expected.f32()[i]));
    expected = ops::gelu_tanh(expected);
  }
  DeviceBuffer dx = upload_bf16(x), dw = upload_bf16(w);
  DeviceBuffer dbias = bf16_out ? upload_bf16(bias) : upload_f32(bias);
  DeviceBuffer dy(size_t(c.m * y_stride) * (bf16_out ? 2 : 4));
  if (c.accumulate) {
    DeviceBuffer init = bf16_out ? upload_bf16(y0) : upload_f32(y0);
    cuda_ok(cudaMemcpy(dy.as<void>(), init.as<void>(), dy.bytes(), cudaMemcpyDeviceToDevice), "copy");
  }
  gpu::GemmArgs args;
  args.x = dx.as<uint16_t>();
  args.weight = dw.as<uint16_t>();
  args.bias = c.bias ? dbias.as<void>() : nullptr;
  args.bias_type = c.y_type;
  args.y = bf16_out ? static_cast<void*>(dy.as<uint16_t>() + y_first) : static_cast<void*>(dy.as<float>() + y_first);
  args.y_type = c.y_type;
  args.m = c.m, args.n = c.n, args.k = c.k;
  args.x_row_stride = x_stride, args.y_row_stride = y_stride;
  args.epilogue = c.epilogue;
  args.accumulate = c.accumulate;
  args.name = "test";
  gpu::gemm_bf16(args);
  const Tensor full =
      bf16_out ? download_bf16(dy.as<void>(), {c.m, y_stride}) : download_f32(dy.as<void>(), {c.m, y_stride});
  if (!c.accumulate && written_outside(full, y_first, c.n) != 0) return {INFINITY, -1};
  const Tensor result = columns_of(full, y_first, c.n);
  return {rel_l2(result, expected), c.epilogue == gpu::GemmEpilogue::GeluTanh ? rel_l2(result, expected_erf) : -1.0};
}

void add_gemm_checks(std::vector<OpCheck>& checks) {
  using gpu::GemmEpilogue;
  using gpu::GemmType;
  const GemmType B = GemmType::BF16, F = GemmType::F32;
  const GemmCase cases[] = {
      {77, 45, 40, false, B, GemmEpilogue::None, false, false},
      {77, 160, 96, true, B, GemmEpilogue::None, false, false},
      {77, 160, 96, true, B, GemmEpilogue::GeluTanh, false, false},
      {77, 160, 96, true, F, GemmEpilogue::None, false, false},
      {77, 160, 96, true, F, GemmEpilogue::None, true, false},
      {77, 160, 96, true, B, GemmEpilogue::None, false, true},
      {130, 64, 1536, true, F, GemmEpilogue::None, false, false},
      {1560, 1536, 1536, true, B, GemmEpilogue::None, false, false},
      {1560, 1536, 1536, true, F, GemmEpilogue::GeluTanh, false, false},
      {1560, 1536, 1536, false, F, GemmEpilogue::None, true, true},
  };
  for (const GemmCase& c : cases) {
    const std::string op = fmt::format("gemm_bf16 {} out{}{}{}{}", c.y_type == B ? "bf16" : "f32",
                                       c.bias ? " +bias" : "", c.epilogue == GemmEpilogue::GeluTanh ? " +gelu" : "",
                                       c.accumulate ? " +accumulate" : "", c.strided ? " strided" : "");
    const double tolerance = c.y_type == B ? kBf16Tolerance : kF32Tolerance;
    checks.push_back({op, fmt::format("m {} n {} k {}", c.m, c.n, c.k), tolerance, [=] {
      const auto [rel, rel_erf] = run_gemm(c);
      if (rel_erf < 0) return rel;
      std::printf("    (GELU epilogue: rel-L2 %.2e vs tanh GELU, %.2e vs erf GELU)\n", rel, rel_erf);
      // The epilogue must be the tanh form: much closer to it than to erf (told apart only with fp32 output).
      return c.y_type == F && !(rel * 10 < rel_erf) ? INFINITY : rel;
    }});
  }
}

}  // namespace

TEST_CASE("every GPU op matches its CPU reference") {
  std::vector<OpCheck> checks;
  add_norm_checks(checks);
  add_rope_checks(checks);
  add_elementwise_checks(checks);
  add_layout_checks(checks);
  add_gemm_checks(checks);
  int failures = 0;
  for (const OpCheck& check : checks) {
    double rel = INFINITY;
    std::string error;
    try {
      rel = check.run();
    } catch (const Error& e) {
      error = e.what();
    }
    // Exact checks return -1 on bit equality and use tolerance 0; NaN/Inf arrive as +inf and always fail.
    const bool passed = error.empty() && rel < check.tolerance;
    failures += passed ? 0 : 1;
    std::printf("%-4s %-40s %-52s rel-L2 %9.2e  (tol %.0e)%s%s\n", passed ? "ok" : "FAIL", check.op.c_str(),
                check.shape.c_str(), rel < 0 ? 0.0 : rel, check.tolerance, error.empty() ? "" : "  error: ",
                error.c_str());
    CAPTURE(check.op);
    CAPTURE(check.shape);
    CAPTURE(error);
    CHECK(passed);
  }
  std::printf("%d of %zu GPU op checks failed\n", failures, checks.size());
}

TEST_CASE("GPU ops reject bad arguments with lf::Error") {
  DeviceBuffer buffer(1024);
  CHECK_THROWS_AS(gpu::layer_norm_modulate(buffer.as<float>(), 4, 8, {}, {}, 2, kEps, buffer.as<uint16_t>(), nullptr),
                  Error);
  const int64_t positions[] = {0};
  const gpu::RopeLayout layout{2, 8, 4, 2, 10000.0};
  CHECK_THROWS_AS(gpu::rope_apply(buffer.as<uint16_t>(), 0, 5, layout, positions, 1, nullptr), Error);  // 5 > 1 x 4
  gpu::GemmArgs args;
  args.x = buffer.as<uint16_t>(), args.weight = buffer.as<uint16_t>(), args.y = buffer.as<void>();
  args.m = 4, args.n = 4, args.k = 4, args.accumulate = true, args.epilogue = gpu::GemmEpilogue::GeluTanh;
  CHECK_THROWS_AS(gpu::gemm_bf16(args), Error);
  cuda_ok(cudaDeviceSynchronize(), "sync");
}

TEST_CASE("op profiling over many ops keeps a bounded event pool and still sums every op") {
  ops::initialize_cuda();
  const Tensor x = random_tensor({4096}, 31).to(Device::CUDA), y = random_tensor({4096}, 32).to(Device::CUDA);
  // GPU time per op ("other": axpby) over n timed ops.
  auto per_op_ms = [&](int n) {
    ops::set_op_profiling(true);
    for (int i = 0; i < n; ++i) (void)ops::axpby(1.0, x, 0.5, y);
    const auto report = ops::op_profile_ms();
    ops::set_op_profiling(false);
    REQUIRE(report.count("other") == 1);
    return report.at("other") / n;
  };
  (void)per_op_ms(100);                    // warm-up
  const double few = per_op_ms(2000);      // under the fold point: summed once at the report
  const double many = per_op_ms(20000);    // folded four times on the way
  MESSAGE("per timed op: " << few * 1e3 << " us over 2000 ops, " << many * 1e3 << " us over 20000; pool of "
                           << gpu::op_timer_pool_slots() << " event pairs");
  CHECK(gpu::op_timer_pool_slots() <= 4097);
  // Every op was summed, the folded ones too: the same time per op either way (a fold that dropped its slots
  // would leave at most 4096 of 20000 ops, under a quarter of the per-op time).
  CHECK(std::isfinite(many));
  CHECK(many > 0.5 * few);
  CHECK(many < 2.0 * few);
}

#endif  // LF_HAVE_CUDA
