// Whole-model GPU parity: one chunk step and a whole small generation on the GPU against the CPU reference with
// the same weights and noise, at shapes that are not tile multiples; and GPU determinism.
#include <doctest/doctest.h>

#if LF_HAVE_CUDA
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "config/config.h"
#include "core/error.h"
#include "model/wan_dit.h"
#include "ops/ops.h"
#include "pipeline/ar_pipeline.h"
#include "test_util.h"

using namespace lf;

namespace {

RunConfig small_run(int64_t head_dim, const std::string& cache) {
  // 5 x 7 grid = 35 tokens a frame (105 a chunk): nothing is a multiple of a tile.
  RunConfig run = parse_run_config(
      fmt::format("model: {{name: gpu-parity, dim: {}, ffn_dim: 320, freq_dim: 64, heads: 2, layers: 3, text_dim: 48,"
                  " text_len: 13, in_channels: 4, out_channels: 4, latent_height: 10, latent_width: 14,"
                  " decoder: wan-vae, weights: random, init_seed: 17}}\n"
                  "pipeline: {{frames: 12, kv_cache: {}}}\n",
                  2 * head_dim, cache),
      "gpu-test");
  return run;
}

Tensor generate_on(Device device, const RunConfig& run, const WanWeights& weights, const Tensor& context) {
  WanDiT model(run.model, weights);
  model.to_device(device);
  auto backend = make_attention_backend(run.attention, &run.pipeline);
  ArPipeline pipeline(run.pipeline, model, *backend);
  auto noise = make_philox_noise(5, {run.pipeline.frames, run.pipeline.chunk_frames, run.model.out_channels,
                                     run.model.latent_height, run.model.latent_width});
  return pipeline.generate(context, *noise, {});
}

}  // namespace

TEST_CASE("one DiT forward on the GPU matches the CPU reference") {
  ops::initialize_cuda();
  for (int64_t head_dim : {64, 128}) {
    CAPTURE(head_dim);
    const RunConfig run = small_run(head_dim, "{mode: global}");
    const WanWeights weights = random_weights(run.model);
    const Tensor context = test::random_tensor({run.model.text_len, run.model.text_dim}, 3);
    const Tensor latents = test::random_tensor({3, 4, 10, 14}, 4);
    const std::vector<double> timesteps(3, 937.5);
    Tensor outputs[2];
    for (int use_gpu = 0; use_gpu < 2; ++use_gpu) {
      const Device device = use_gpu ? Device::CUDA : Device::CPU;
      WanDiT model(run.model, weights);
      model.to_device(device);
      const CacheGeometry geometry{run.model.layers, run.model.tokens_per_frame(), run.model.heads,
                                   run.model.head_dim(), 6, 3, device};
      KvCache cache(run.pipeline.kv_cache, geometry, model.rope_grid());
      auto backend = make_attention_backend(run.attention);
      const CrossAttentionCache cross = model.build_cross_cache(context);
      // Chunk 0 fills the cache, chunk 1 attends to it: the step the chunk loop repeats.
      for (int64_t chunk = 0; chunk < 2; ++chunk) {
        cache.begin_forward(chunk * 3, 3);
        CachedSelfAttention attention(cache, *backend, model.rope_grid(), run.model.head_dim(), {chunk, 0, false});
        outputs[use_gpu] = model.forward(latents.to(device), timesteps, cross, attention).to(Device::CPU);
      }
    }
    const double error = test::rel_l2(outputs[1], outputs[0]);
    MESSAGE("chunk forward rel-L2 GPU vs CPU (head_dim " << head_dim << "): " << error);
    CHECK(error < 1e-2);
  }
}

TEST_CASE("a whole small generation on the GPU matches the CPU and is deterministic") {
  ops::initialize_cuda();
  for (const std::string cache :
       {"{mode: global}", "{mode: rolling, window_frames: 7, sink_frames: 1, positions: relative}"}) {
    CAPTURE(cache);
    const RunConfig run = small_run(128, cache);
    const WanWeights weights = random_weights(run.model);
    const Tensor context = test::random_tensor({run.model.text_len, run.model.text_dim}, 8);
    const Tensor cpu = generate_on(Device::CPU, run, weights, context);
    const Tensor gpu = generate_on(Device::CUDA, run, weights, context);
    const Tensor again = generate_on(Device::CUDA, run, weights, context);
    const double error = test::rel_l2(gpu, cpu);
    MESSAGE("generation latents rel-L2 GPU vs CPU (" << cache << "): " << error);
    CHECK(error < 3e-2);
    CHECK(std::memcmp(gpu.raw(), again.raw(), gpu.nbytes()) == 0);
  }
}

TEST_CASE("sparse backends run on the GPU: deterministic, finite, close to the CPU planner's result") {
  ops::initialize_cuda();
  for (const std::string backend : {"lightforcing", "block-topk", "block-topp", "sliding-tile", "radial"}) {
    CAPTURE(backend);
    RunConfig run = small_run(128, "{mode: global}");
    run.attention.backend = backend;
    run.attention.query_block = 128;
    run.attention.key_block = 64;
    run.attention.keep_frames = 3, run.attention.keep_sink = 1, run.attention.keep_near = 1;
    run.attention.sparsity = 0.5, run.attention.sparsity_base = 0.6;
    run.attention.sparse_first_chunk = true;
    validate(run);
    const WanWeights weights = random_weights(run.model);
    const Tensor context = test::random_tensor({run.model.text_len, run.model.text_dim}, 8);
    const Tensor cpu = generate_on(Device::CPU, run, weights, context);
    const Tensor gpu = generate_on(Device::CUDA, run, weights, context);
    const Tensor again = generate_on(Device::CUDA, run, weights, context);
    const double error = test::rel_l2(gpu, cpu);
    MESSAGE(backend << " generation latents rel-L2 GPU vs CPU: " << error);
    CHECK(std::isfinite(error));
    // Measured 3.5e-3 (dense) to 1.2e-2 (masks may differ where bf16 and f32 pooled scores tie); 3e-2 is 2.5x the
    // worst, where the former 0.2 let a wrong mask through.
    CHECK(error < 3e-2);
    CHECK(std::memcmp(gpu.raw(), again.raw(), gpu.nbytes()) == 0);
  }
}

TEST_CASE("GPU planners with pooling in the RoPE pass give the same bytes as the planner pooling itself") {
  // rope_and_pool gives the planner q's and the chunk's pooled blocks, and a refresh pass stores them so the next
  // chunk reuses every past frame; a stale or misplaced block would change a mask and so the latents. Global and
  // rolling (evicting: no reuse across chunks) caches, the HSA rule included (past frames > keep_frames). With
  // the pooled blocks the planner runs on a second stream beside the KV-cache write (plan_beside_cache_write):
  // a missing wait between the streams would plan from or attend over stale data.
  ops::initialize_cuda();
  for (const std::string cache : {"{mode: global}", "{mode: rolling, window_frames: 6, sink_frames: 1}"}) {
    for (const std::string backend : {"lightforcing", "block-topk", "block-topp"}) {
      CAPTURE(cache);
      CAPTURE(backend);
      RunConfig run = small_run(128, cache);
      run.attention.backend = backend;
      run.attention.query_block = 128;
      run.attention.key_block = 64;
      run.attention.keep_frames = 3, run.attention.keep_sink = 1, run.attention.keep_near = 1;
      run.attention.sparsity = 0.5, run.attention.sparsity_base = 0.6;
      validate(run);
      const WanWeights weights = random_weights(run.model);
      const Tensor context = test::random_tensor({run.model.text_len, run.model.text_dim}, 9);
      run.attention.fused_rope_pooling = true;
      const Tensor fused = generate_on(Device::CUDA, run, weights, context);  // planned beside the write
      run.attention.plan_beside_cache_write = false;
      const Tensor one_stream = generate_on(Device::CUDA, run, weights, context);
      run.attention.fused_rope_pooling = false;
      const Tensor plain = generate_on(Device::CUDA, run, weights, context);
      CHECK(std::memcmp(fused.raw(), plain.raw(), fused.nbytes()) == 0);
      CHECK(std::memcmp(one_stream.raw(), plain.raw(), plain.nbytes()) == 0);
    }
  }
}

TEST_CASE("planning beside the KV-cache write at the engine's shapes gives the same bytes as one stream") {
  // The small runs above finish each copy in a moment; here the write is the bench's (4680 tokens x 12 heads x
  // 128 of k and v) and HSA plans 7 chunks of 1560-token frames, so a missing wait would race for real.
  ops::initialize_cuda();
  RunConfig run = parse_run_config(
      "model: {name: gpu-overlap, dim: 1536, ffn_dim: 1024, freq_dim: 64, heads: 12, layers: 2, text_dim: 48,"
      " text_len: 13, in_channels: 4, out_channels: 4, latent_height: 60, latent_width: 104, decoder: wan-vae,"
      " weights: random, init_seed: 23}\n"
      "pipeline: {frames: 21}\n"
      "attention: {backend: lightforcing, sparsity: 0.8, sparsity_base: 0.9, query_block: 128, key_block: 128}\n",
      "gpu-test");
  validate(run);
  const WanWeights weights = random_weights(run.model);
  const Tensor context = test::random_tensor({run.model.text_len, run.model.text_dim}, 10);
  const Tensor beside = generate_on(Device::CUDA, run, weights, context);
  run.attention.plan_beside_cache_write = false;
  const Tensor one_stream = generate_on(Device::CUDA, run, weights, context);
  CHECK(std::memcmp(beside.raw(), one_stream.raw(), beside.nbytes()) == 0);
}

TEST_CASE("GPU errors name the op") {
  ops::initialize_cuda();
  Tensor x = Tensor::zeros({4, 8}, DType::F32, Device::CUDA);
  Tensor w = Tensor::zeros({3, 5}, DType::BF16, Device::CUDA);
  CHECK_THROWS_WITH_AS(ops::linear(x, w, Tensor()), doctest::Contains("linear"), Error);
  Tensor host = Tensor::zeros({4, 8});
  CHECK_THROWS_WITH_AS(ops::axpby(1.0, x, 1.0, host), doctest::Contains("both the CPU and the GPU"), Error);
}
#endif
