// Scheduler values from the spec, noise addressing and replay, and whole-generation determinism.
#include <doctest/doctest.h>

#include <cstring>

#include "config/config.h"
#include "core/error.h"
#include "model/wan_dit.h"
#include "pipeline/ar_pipeline.h"
#include "pipeline/prompt_schedule.h"
#include "pipeline/scheduler.h"
#include "test_util.h"

using namespace lf;

TEST_CASE("warped timesteps with shift 5 and 8 equal the spec's table") {
  PipelineConfig config;
  FlowMatchSchedule shift5(config);
  const std::vector<double> expected5 = {1000.0, 937.5, 833.3333, 625.0};
  for (size_t i = 0; i < 4; ++i) CHECK(shift5.timesteps()[i] == doctest::Approx(expected5[i]).epsilon(1e-6));
  CHECK(shift5.sigmas()[1] == doctest::Approx(0.9375).epsilon(1e-6));
  config.shift = 8.0;
  FlowMatchSchedule shift8(config);
  const std::vector<double> expected8 = {1000.0, 960.0, 888.8889, 727.2727};
  for (size_t i = 0; i < 4; ++i) CHECK(shift8.timesteps()[i] == doctest::Approx(expected8[i]).epsilon(1e-6));
  config.warp = false;
  config.denoising_steps = {999, 957, 899, 702};
  FlowMatchSchedule plain(config);
  CHECK(plain.timesteps()[2] == 899.0);
  CHECK(plain.sigmas()[2] == doctest::Approx(0.899).epsilon(2e-3));  // nearest table entry
}

namespace {
RunConfig tiny_run(int64_t frames) {
  RunConfig run = parse_run_config(
      "model: {name: t, dim: 32, ffn_dim: 48, freq_dim: 16, heads: 2, layers: 2, text_dim: 12, text_len: 5,"
      " in_channels: 3, out_channels: 3, latent_height: 4, latent_width: 6, weights: random, init_seed: 5}\n"
      "pipeline: {frames: " + std::to_string(frames) + "}\n",
      "test");
  return run;
}

Tensor generate(const RunConfig& run, NoiseSource& noise, const Tensor& context) {
  const WanDiT model(run.model, random_weights(run.model));
  auto backend = make_attention_backend(run.attention);
  ArPipeline pipeline(run.pipeline, model, *backend);
  return pipeline.generate(context, noise, {});
}

NoiseShape noise_shape(const RunConfig& run) {
  return {run.pipeline.frames, run.pipeline.chunk_frames, 3, run.model.latent_height, run.model.latent_width};
}
}  // namespace

TEST_CASE("generation is deterministic, seeded, and replays from a saved noise file") {
  const RunConfig run = tiny_run(9);
  const Tensor context = test::random_tensor({5, 12}, 2);
  auto noise_a = make_philox_noise(7, noise_shape(run));
  auto noise_b = make_philox_noise(7, noise_shape(run));
  auto noise_c = make_philox_noise(8, noise_shape(run));
  RecordingNoise recorder(make_philox_noise(7, noise_shape(run)), noise_shape(run));
  const Tensor a = generate(run, *noise_a, context);
  const Tensor b = generate(run, *noise_b, context);
  const Tensor c = generate(run, *noise_c, context);
  const Tensor recorded = generate(run, recorder, context);
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  CHECK(std::memcmp(a.raw(), recorded.raw(), a.nbytes()) == 0);
  CHECK(test::rel_l2(a, c) > 0.1);

  const std::string path = test::tmp_path("noise.safetensors");
  recorder.save(path);
  auto replay = make_file_noise(path, noise_shape(run));
  const Tensor replayed = generate(run, *replay, context);
  CHECK(std::memcmp(a.raw(), replayed.raw(), a.nbytes()) == 0);
  // A longer video starts with the same chunks: noise is keyed by chunk, not by position in one long stream.
  const RunConfig longer = tiny_run(12);
  auto noise_long = make_philox_noise(7, noise_shape(longer));
  const Tensor long_video = generate(longer, *noise_long, context);
  CHECK(std::memcmp(a.raw(), long_video.raw(), a.nbytes()) == 0);
  // A noise file for another shape is refused, naming the tensor.
  CHECK_THROWS_WITH_AS(make_file_noise(path, noise_shape(longer)), doctest::Contains("'noise_initial' has shape"),
                       Error);
}

TEST_CASE("config rejects bad values naming the key") {
  CHECK_THROWS_WITH_AS(parse_run_config("pipeline: {shfit: 3}", "x"), doctest::Contains("pipeline.shfit"), Error);
  const std::string model = "model: {dim: 32, ffn_dim: 48, heads: 2, layers: 1, text_dim: 4, text_len: 2,"
                            " in_channels: 3, out_channels: 3, latent_height: 4, latent_width: 4}\n";
  CHECK_NOTHROW(parse_run_config(model, "x"));
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"pipeline.frames=-3"}), doctest::Contains("frames must be > 0"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"pipeline.frames=7"}),
                       doctest::Contains("not a multiple of the chunk size 3"), Error);
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"attention.backend=magic"}), doctest::Contains("'magic'"), Error);
  CHECK_THROWS_WITH_AS(parse_run_config(model, "x", {"pipeline.kv_cache.mode=rolling",
                                                     "pipeline.kv_cache.window_frames=3",
                                                     "pipeline.kv_cache.sink_frames=1"}),
                       doctest::Contains("window_frames 3 must hold the sink"), Error);
  CHECK_THROWS_WITH_AS(parse_run_config("model: [1, 2", "bad.yaml"), doctest::Contains("bad.yaml"), Error);
  const RunConfig overridden = parse_run_config(model, "x", {"pipeline.denoising_steps=[1000, 500]",
                                                              "pipeline.shift=8"});
  CHECK(overridden.pipeline.denoising_steps == std::vector<double>{1000, 500});
  CHECK(overridden.pipeline.shift == 8.0);
  // to_yaml round-trips.
  const RunConfig again = parse_run_config(to_yaml(overridden), "round-trip");
  CHECK(to_yaml(again) == to_yaml(overridden));
}

namespace {

// Chunk `chunk` of a generation that switched to `cross` there with a recache, computed from the definition: each
// denoising step is one block-causal forward over [the earlier chunks' clean latents at the context timestep, the
// chunk's current x at the step's timestep] under the new prompt, and the sampler's update applied by hand.
Tensor recached_chunk_reference(const RunConfig& run, const WanDiT& model, const CrossAttentionCache& cross,
                                const Tensor& earlier_latents, int64_t chunk, NoiseSource& noise) {
  const FlowMatchSchedule schedule(run.pipeline);
  const int64_t chunk_frames = run.pipeline.chunk_frames, past_frames = earlier_latents.dim(0);
  BlockCausalSelfAttention block_causal(KvCacheConfig{}, chunk_frames, model.rope_grid(), model.config().head_dim());
  Tensor x = noise.initial(chunk), x0;
  const size_t steps = schedule.timesteps().size();
  for (size_t step = 0; step < steps; ++step) {
    Tensor sequence = Tensor::empty({past_frames + chunk_frames, x.dim(1), x.dim(2), x.dim(3)});
    std::memcpy(sequence.raw(), earlier_latents.raw(), earlier_latents.nbytes());
    std::memcpy(static_cast<char*>(sequence.raw()) + earlier_latents.nbytes(), x.raw(), x.nbytes());
    std::vector<double> timesteps(size_t(past_frames), schedule.context_timestep());
    timesteps.resize(size_t(past_frames + chunk_frames), schedule.timesteps()[step]);
    const Tensor velocity =
        model.forward(sequence, timesteps, cross, block_causal).slice_rows(past_frames, past_frames + chunk_frames);
    const float sigma = float(schedule.sigmas()[step]);
    x0 = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) x0.f32()[i] = float(double(x.f32()[i]) - sigma * double(velocity.f32()[i]));
    if (step + 1 < steps) {
      const double next = schedule.sigmas()[step + 1];
      const Tensor fresh = noise.renoise(chunk, int64_t(step + 1));
      for (int64_t i = 0; i < x.numel(); ++i)
        x.f32()[i] = float((1.0 - next) * double(x0.f32()[i]) + next * double(fresh.f32()[i]));
    }
  }
  return x0;
}

}  // namespace

TEST_CASE("prompt switches: earlier chunks untouched, the recache equals the definition, and it matters") {
  RunConfig run = tiny_run(12);  // 4 chunks, switch at chunk 2
  const WanDiT model(run.model, random_weights(run.model));
  const Tensor prompt_a = test::random_tensor({5, 12}, 21), prompt_b = test::random_tensor({5, 12}, 22);
  auto generate_with = [&](const std::vector<ContextSwitch>& contexts, bool recache) {
    RunConfig variant = run;
    variant.pipeline.recache_on_switch = recache;
    auto backend = make_attention_backend(variant.attention);
    auto noise = make_philox_noise(3, noise_shape(variant));
    ArPipeline pipeline(variant.pipeline, model, *backend);
    return pipeline.generate(contexts, *noise, {});
  };
  const Tensor only_a = generate_with({{0, prompt_a}}, true);
  const Tensor recached = generate_with({{0, prompt_a}, {2, prompt_b}}, true);
  const Tensor kept = generate_with({{0, prompt_a}, {2, prompt_b}}, false);

  // Chunks before the switch are the single-prompt run's, bit for bit.
  CHECK(test::rel_l2(recached.slice_rows(0, 6).clone(), only_a.slice_rows(0, 6).clone()) == 0.0);
  CHECK(test::rel_l2(kept.slice_rows(0, 6).clone(), only_a.slice_rows(0, 6).clone()) == 0.0);

  // The switched chunk after a recache equals the block-causal definition under prompt B.
  auto noise = make_philox_noise(3, noise_shape(run));
  const Tensor reference = recached_chunk_reference(run, model, model.build_cross_cache(prompt_b),
                                                    recached.slice_rows(0, 6).clone(), 2, *noise);
  const double recache_error = test::rel_l2(recached.slice_rows(6, 9).clone(), reference);
  CHECK(recache_error < 1e-6);  // measured 0 (the CPU paths sum in the same order); 1e-6 allows f32 reordering

  // The prompt matters, and so does the recache: three different chunk-2 results.
  CHECK(test::rel_l2(recached.slice_rows(6, 9).clone(), only_a.slice_rows(6, 9).clone()) > 1e-3);
  CHECK(test::rel_l2(kept.slice_rows(6, 9).clone(), recached.slice_rows(6, 9).clone()) > 1e-4);
  CHECK(test::rel_l2(kept.slice_rows(6, 9).clone(), only_a.slice_rows(6, 9).clone()) > 1e-3);

  // A schedule must start at chunk 0 and increase.
  CHECK_THROWS_AS(generate_with({{1, prompt_a}}, true), Error);
  CHECK_THROWS_AS(generate_with({{0, prompt_a}, {2, prompt_b}, {2, prompt_a}}, true), Error);
}

TEST_CASE("--prompt-schedule parses chunk:prompt entries and names the bad one") {
  const auto schedule = parse_prompt_schedule(" 0: a red circle moves right ;3:a blue square: falls;", 5);
  REQUIRE(schedule.size() == 2);
  CHECK(schedule[0].first_chunk == 0);
  CHECK(schedule[0].prompt == "a red circle moves right");
  CHECK(schedule[1].first_chunk == 3);
  CHECK(schedule[1].prompt == "a blue square: falls");
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("1:late start", 5), doctest::Contains("must be chunk 0"), Error);
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("0:a;0:b", 5), doctest::Contains("entry '0:b'"), Error);
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("0:a;x:b", 5), doctest::Contains("'x' in entry 'x:b'"), Error);
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("0:a;5:b", 5), doctest::Contains("past the last chunk 4"), Error);
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("0:", 5), doctest::Contains("empty prompt"), Error);
  CHECK_THROWS_WITH_AS(parse_prompt_schedule("just a prompt", 5), doctest::Contains("not CHUNK:PROMPT"), Error);
}
