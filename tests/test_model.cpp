// Model invariants: the KV-cached chunk loop equals one block-causal forward over the whole sequence (global and
// rolling caches, absolute and relative positions), and weights survive save/load under every name layout.
#include <doctest/doctest.h>

#include <cstring>

#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/kv_cache.h"
#include "model/wan_dit.h"
#include "test_util.h"

using namespace lf;

namespace {

ModelConfig small_model() {
  ModelConfig config;
  config.name = "test-small";
  config.dim = 32;
  config.ffn_dim = 48;
  config.heads = 2;
  config.layers = 2;
  config.text_dim = 12;
  config.text_len = 5;
  config.in_channels = config.out_channels = 3;
  config.latent_height = 4;
  config.latent_width = 6;  // 2 x 3 grid: 6 tokens a frame
  config.freq_dim = 16;
  config.text_encoder = "embeddings";
  config.init_seed = 99;
  return config;
}

struct Sequence {
  Tensor latents;                  // [frames, C, H, W]
  std::vector<double> timesteps;   // per frame
};

Sequence random_sequence(const ModelConfig& config, int64_t frames, int64_t chunk_frames, uint64_t seed) {
  Sequence sequence{test::random_tensor({frames, config.in_channels, config.latent_height, config.latent_width}, seed),
                    {}};
  for (int64_t f = 0; f < frames; ++f) sequence.timesteps.push_back(1000.0 - 97.0 * double(f / chunk_frames));
  return sequence;
}

// Runs the chunk loop's cache protocol: each chunk is first run on a "noisy" input (like a denoising step) and
// then on its real input (like the refresh), which must overwrite the slot. Returns the real passes' outputs.
Tensor run_chunked(const WanDiT& model, const KvCacheConfig& cache_config, const Sequence& sequence,
                   int64_t chunk_frames, const CrossAttentionCache& cross) {
  const ModelConfig& c = model.config();
  const int64_t frames = sequence.latents.dim(0);
  KvCache cache(cache_config, {c.layers, c.tokens_per_frame(), c.heads, c.head_dim(), frames, chunk_frames},
                model.rope_grid());
  auto backend = make_attention_backend(AttentionConfig{});
  Tensor out = Tensor::empty(sequence.latents.shape());
  for (int64_t chunk = 0; chunk < frames / chunk_frames; ++chunk) {
    const Tensor input = sequence.latents.slice_rows(chunk * chunk_frames, (chunk + 1) * chunk_frames).clone();
    const std::vector<double> t(sequence.timesteps.begin() + chunk * chunk_frames,
                                sequence.timesteps.begin() + (chunk + 1) * chunk_frames);
    cache.begin_forward(chunk * chunk_frames, chunk_frames);
    CachedSelfAttention noisy_pass(cache, *backend, model.rope_grid(), c.head_dim(), {chunk, 0, false});
    model.forward(test::random_tensor(input.shape(), 1000 + uint64_t(chunk)), t, cross, noisy_pass);
    cache.begin_forward(chunk * chunk_frames, chunk_frames);
    CachedSelfAttention real_pass(cache, *backend, model.rope_grid(), c.head_dim(), {chunk, 1, true});
    const Tensor result = model.forward(input, t, cross, real_pass);
    std::memcpy(out.slice_rows(chunk * chunk_frames, (chunk + 1) * chunk_frames).raw(), result.raw(), result.nbytes());
  }
  return out;
}

Tensor run_reference(const WanDiT& model, const KvCacheConfig& cache_config, const Sequence& sequence,
                     int64_t chunk_frames, const CrossAttentionCache& cross) {
  BlockCausalSelfAttention reference(cache_config, chunk_frames, model.rope_grid(), model.config().head_dim());
  return model.forward(sequence.latents, sequence.timesteps, cross, reference);
}

}  // namespace

TEST_CASE("KV-cached chunk loop equals one block-causal forward") {
  const ModelConfig config = small_model();
  const WanDiT model(config, random_weights(config));
  const CrossAttentionCache cross = model.build_cross_cache(test::random_tensor({config.text_len, config.text_dim}, 3));
  const int64_t chunk_frames = 3, frames = 15;
  const Sequence sequence = random_sequence(config, frames, chunk_frames, 4);

  KvCacheConfig global;
  KvCacheConfig rolling_sink{"rolling", 7, 1, "absolute"};  // 7 frames: evicts from chunk 2 on, window not chunk-aligned
  KvCacheConfig rolling_plain{"rolling", 6, 0, "absolute"};
  KvCacheConfig rolling_relative{"rolling", 7, 1, "relative"};
  for (const KvCacheConfig& cache_config : {global, rolling_sink, rolling_plain, rolling_relative}) {
    CAPTURE(cache_config.mode);
    CAPTURE(cache_config.window_frames);
    CAPTURE(cache_config.positions);
    const Tensor chunked = run_chunked(model, cache_config, sequence, chunk_frames, cross);
    const Tensor reference = run_reference(model, cache_config, sequence, chunk_frames, cross);
    CHECK(test::rel_l2(chunked, reference) < 1e-5);
    if (cache_config.mode == "rolling") {
      // The window really changes the result: a global reference must disagree.
      CHECK(test::rel_l2(chunked, run_reference(model, global, sequence, chunk_frames, cross)) > 1e-4);
    }
  }
  // Relative and absolute positions really differ once frames are evicted.
  CHECK(test::rel_l2(run_reference(model, rolling_sink, sequence, chunk_frames, cross),
                     run_reference(model, rolling_relative, sequence, chunk_frames, cross)) > 1e-4);
}

TEST_CASE("rolling cache keeps the sink and the newest frames") {
  KvCacheConfig config{"rolling", 7, 1, "absolute"};
  KvCache cache(config, {1, 2, 1, 2, 15, 3}, {2, 2, 10000.0});
  for (int64_t chunk = 0; chunk < 5; ++chunk) {
    cache.begin_forward(chunk * 3, 3);
    cache.begin_forward(chunk * 3, 3);  // a re-run of the same chunk changes nothing
    CHECK(cache.visible_frames() == visible_frames_for_chunk(config, 3, chunk));
  }
  CHECK(cache.visible_frames() == std::vector<int64_t>{0, 9, 10, 11, 12, 13, 14});
  CHECK(cache.query_positions() == std::vector<int64_t>{12, 13, 14});
  KvCache relative({"rolling", 7, 1, "relative"}, {1, 2, 1, 2, 15, 3}, {2, 2, 10000.0});
  for (int64_t chunk = 0; chunk < 5; ++chunk) relative.begin_forward(chunk * 3, 3);
  CHECK(relative.query_positions() == std::vector<int64_t>{4, 5, 6});
  CHECK_THROWS_AS(cache.begin_forward(3, 3), Error);  // going back in time is refused
}

TEST_CASE("weights round-trip through safetensors under every checkpoint layout") {
  ModelConfig config = small_model();
  WanWeights weights = random_weights(config);
  const WanDiT original(config, random_weights(config));
  const Sequence sequence = random_sequence(config, 3, 3, 8);
  const Tensor context = test::random_tensor({config.text_len, config.text_dim}, 9);
  BlockCausalSelfAttention attention(KvCacheConfig{}, 3, original.rope_grid(), config.head_dim());
  const Tensor expected = original.forward(sequence.latents, sequence.timesteps, original.build_cross_cache(context),
                                           attention);

  for (const std::string prefix : {"", "model.", "generator_ema.model.", "generator._orig_mod.model."}) {
    CAPTURE(prefix);
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (ParamSlot& slot : parameter_slots(config, weights))
      tensors.emplace_back(prefix + slot.name, slot.target->reshape(slot.official_shape));
    if (prefix == "generator_ema.model.")  // a second, different generator must be ignored: EMA wins
      tensors.emplace_back("generator.model.head.head.bias", test::random_tensor({12}, 1));
    const std::string path = test::tmp_path("weights_layout.safetensors");
    write_safetensors(path, tensors, {});
    const auto checkpoint = Checkpoint::open(path);
    const WanDiT loaded(config, load_weights(config, *checkpoint));
    const Tensor output = loaded.forward(sequence.latents, sequence.timesteps, loaded.build_cross_cache(context),
                                         attention);
    CHECK(test::rel_l2(output, expected) == 0.0);
  }

  // bf16 storage: loads, and matches within bf16 precision.
  const std::string bf16_path = test::tmp_path("weights_bf16.safetensors");
  save_weights(config, weights, bf16_path, DType::BF16);
  const WanDiT from_bf16(config, load_weights(config, *Checkpoint::open(bf16_path)));
  const Tensor output = from_bf16.forward(sequence.latents, sequence.timesteps, from_bf16.build_cross_cache(context),
                                          attention);
  CHECK(test::rel_l2(output, expected) < 2e-2);
  CHECK(test::rel_l2(output, expected) > 0.0);

  // A config that does not describe the file: errors name the key and both shapes.
  ModelConfig wider = config;
  wider.ffn_dim = 64;
  CHECK_THROWS_WITH_AS(load_weights(wider, *Checkpoint::open(bf16_path)),
                       doctest::Contains("tensor 'blocks.0.ffn.0.weight' has shape [48, 32], expected [64, 32]"), Error);
  ModelConfig deeper = config;
  deeper.layers = 3;
  CHECK_THROWS_WITH_AS(load_weights(deeper, *Checkpoint::open(bf16_path)),
                       doctest::Contains("missing tensor 'blocks.2.modulation'"), Error);
  ModelConfig shallower = config;
  shallower.layers = 1;
  CHECK_THROWS_WITH_AS(load_weights(shallower, *Checkpoint::open(bf16_path)),
                       doctest::Contains("unexpected tensor 'blocks.1."), Error);
}

TEST_CASE("the 1.3B config has the published parameter count") {
  ModelConfig config;
  config.dim = 1536, config.ffn_dim = 8960, config.heads = 12, config.layers = 30;
  config.text_dim = 4096, config.text_len = 512, config.in_channels = config.out_channels = 16;
  config.latent_height = 60, config.latent_width = 104;
  CHECK(parameter_count(config) == 1418996800);
  CHECK(config.tokens_per_frame() == 1560);
}
