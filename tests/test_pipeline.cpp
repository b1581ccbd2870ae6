// Scheduler values from the spec, noise addressing and replay, and whole-generation determinism.
#include <doctest/doctest.h>

#include <cstring>

#include "config/config.h"
#include "core/error.h"
#include "model/wan_dit.h"
#include "pipeline/ar_pipeline.h"
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
  // attention.backend is checked by lib/attention's registry (test_sparse), not by the config parser below it.
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
