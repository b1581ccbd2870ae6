#pragma once
// lab_sparse's shared pieces: device buffers and random data, the lab geometry and masks, the combinations and
// launch tunings it checks and times.
// Included by lab_sparse.cu only (one translation unit), after its includes.

namespace {

constexpr int kBenchLq = 4680, kBenchHeads = 12, kBenchDim = 128, kTokensPerFrame = 1560;
const double kDensities[] = {0.1, 0.2, 0.3, 0.5, 0.7, 1.0};

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t n) {
    LF_CUDA_CHECK(cudaMalloc(&ptr, std::max<size_t>(n, 16)), "lab buffer of {} bytes", n);
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

template <class T>
std::unique_ptr<DeviceBuffer> upload(const std::vector<T>& host) {
  auto buffer = std::make_unique<DeviceBuffer>(host.size() * sizeof(T));
  if (!host.empty())
    LF_CUDA_CHECK(cudaMemcpy(buffer->ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  return buffer;
}
template <class T>
std::vector<T> download(const void* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) LF_CUDA_CHECK(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "download");
  return host;
}

// Deterministic uniform bf16 in [-amplitude, amplitude) from a hash of (seed, index): the same values on the device
// (bench inputs, fast) and on the host (check inputs, for the reference).
__host__ __device__ inline float hashed_uniform(uint64_t seed, uint64_t i) {
  uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull ^ (i + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 29;
  return float((x >> 40) & 0xffffff) / float(1 << 23) - 1.0f;
}
__global__ void fill_kernel(__nv_bfloat16* out, size_t count, uint64_t seed, float amplitude) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < count; i += size_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(amplitude * hashed_uniform(seed, i));
}
std::vector<float> host_values(size_t count, uint64_t seed, float amplitude) {
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) out[i] = __bfloat162float(__float2bfloat16(amplitude * hashed_uniform(seed, i)));
  return out;
}
std::unique_ptr<DeviceBuffer> device_values(size_t count, uint64_t seed, float amplitude) {
  auto buffer = std::make_unique<DeviceBuffer>(count * 2);
  fill_kernel<<<1024, 256>>>(buffer->as<__nv_bfloat16>(), count, seed, amplitude);
  LF_CUDA_LAUNCH_CHECK("fill");
  return buffer;
}

using lab::parallel_for;

using lab::synchronize_or_die;

// ---- masks --------------------------------------------------------------------------------------------------------
// The lab's shapes, with the frame-aligned rules of core/block_geometry.h (the copy the kernels use).
struct Geometry {
  int tokens_per_frame, key_block, query_block, lq, frames;
  lf::BasicBlockGeometry<int> blocks() const { return {tokens_per_frame, lq, frames, query_block, key_block}; }
  int blocks_per_frame() const { return blocks().blocks_per_frame(); }
  int key_blocks() const { return blocks().key_blocks(); }
  int query_blocks() const { return blocks().query_blocks(); }
  int lk() const { return blocks().key_tokens(); }
  int block_start(int b) const { return blocks().key_block_start(b); }
  int block_length(int b) const { return blocks().key_block_length(b); }
};

struct Csr {
  std::vector<int> row_offsets{0}, key_indices;
};

// `per_row` distinct random blocks per row, ascending (per_row < 0: each block with probability 1/2, with the
// last row left empty and the first row full, for the checks). shared_rows: the rows of a head repeat its first.
Csr random_mask(const Geometry& g, int heads, int per_row, uint64_t seed, bool shared_rows = false) {
  Csr mask;
  const int k = g.key_blocks(), rows = heads * g.query_blocks();
  std::vector<int> pool(static_cast<size_t>(k));
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 7;
  auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int r = 0; r < rows; ++r) {
    if (shared_rows && per_row >= 0 && r % g.query_blocks() != 0) {
      // pool still starts with the head's first row (sorted), drawn in the branch below
      mask.key_indices.insert(mask.key_indices.end(), pool.begin(), pool.begin() + per_row);
    } else if (per_row >= 0) {
      std::iota(pool.begin(), pool.end(), 0);
      for (int i = 0; i < per_row; ++i) std::swap(pool[size_t(i)], pool[size_t(i + int(next() % uint64_t(k - i)))]);
      std::sort(pool.begin(), pool.begin() + per_row);
      mask.key_indices.insert(mask.key_indices.end(), pool.begin(), pool.begin() + per_row);
    } else if (r != rows - 1) {
      for (int b = 0; b < k; ++b)
        if (r == 0 || next() % 2 == 1) mask.key_indices.push_back(b);
    }
    mask.row_offsets.push_back(int(mask.key_indices.size()));
  }
  return mask;
}

double token_density(const Geometry& g, const Csr& mask) {
  double selected = 0;
  for (int b : mask.key_indices) selected += g.block_length(b);
  return selected / (double(mask.row_offsets.size() - 1) * g.lk());
}

struct DeviceMask {
  std::unique_ptr<DeviceBuffer> offsets, indices;
  BlockSparseLayout layout(const Geometry& g, int heads) const {
    BlockSparseLayout l;
    l.row_offsets = offsets->as<int>();
    l.key_indices = indices->as<int>();
    l.query_block = g.query_block;
    l.key_block = g.key_block;
    l.tokens_per_frame = g.tokens_per_frame;
    l.heads = heads;
    l.query_blocks = g.query_blocks();
    return l;
  }
};
DeviceMask upload_mask(const Csr& mask) { return {upload(mask.row_offsets), upload(mask.key_indices)}; }

FlashAttentionParams params_for(const void* q, const void* k, const void* v, void* out, int lq, int lk, int heads,
                                int dim) {
  const int64_t row = int64_t(heads) * dim;
  return {q, k, v, out, row, row, row, row, lq, lk, heads, dim, 1.0f / std::sqrt(float(dim))};
}

// The (variant, query_block, key_block) combinations the lab runs; unsupported ones are skipped with the reason.
struct Combo {
  FlashVariant variant;
  int query_block, key_block;
};
const Combo kCombos[] = {{FlashVariant::MmaSync, 128, 64},  {FlashVariant::MmaSync, 64, 64},
                         {FlashVariant::MmaSync, 128, 128}, {FlashVariant::MmaSync, 64, 128},
                         {FlashVariant::Hopper, 128, 128},  {FlashVariant::Hopper, 128, 64},
                         {FlashVariant::Auto, 128, 128},    {FlashVariant::Auto, 64, 64}};

// The Hopper block-sparse launches the lab checks and times ("grid" = one CTA per row, no packing: the kernel as it
// was before; the last is the default).
struct HopperTuning {
  const char* name;
  bool persistent, pack_tails, early_handover, double_q;
};
const HopperTuning kHopperTunings[] = {{"grid", false, false, false, false},
                                       {"persistent", true, false, false, false},
                                       {"persistent+packed", true, true, false, false},
                                       {"persistent+packed+handover", true, true, true, false},
                                       {"persistent+packed+2q", true, true, false, true},
                                       {"persistent+packed+2q+handover", true, true, true, true}};

// Sets the Hopper launch switches and experiments of `tuning` (reset_hopper_tuning: the production defaults).
void apply_hopper_tuning(const HopperTuning& tuning) {
  SpeedSwitches switches = speed_switches();
  switches.block_sparse_persistent = tuning.persistent;
  switches.block_sparse_pack_tails = tuning.pack_tails;
  set_speed_switches(switches);
  g_experiments = {{nullptr, tuning.early_handover}, tuning.double_q};
}
void reset_hopper_tuning() { apply_hopper_tuning({"default", true, true, false, false}); }

// Narrowing flags (for ncu, which replays each kernel: one shape, one density, the default Hopper launch).
struct BenchFilter {
  int lk = 0;             // 0 = every Lk
  double density = -1;    // < 0 = every density
  bool hopper_default = false;  // only hopper q128 k128 persistent+packed (and the dense rows)
  bool planner = true;    // the planner breakdown after the kernel rows
  bool warm = false;      // one input set: K/V stay in L2 between launches (default: sets > 3x L2, cold as in the engine)
  // Every query block of a head selects the same random key blocks (bench rows only): the L2 best case of a mask,
  // against which the default masks (independent rows) show what the K/V working set beyond L2 costs.
  bool shared_rows = false;
};
BenchFilter g_filter;

std::string combo_name(const Combo& c) {
  return fmt::format("{} q{} k{}", flash_variant_name(c.variant), c.query_block, c.key_block);
}

}  // namespace
