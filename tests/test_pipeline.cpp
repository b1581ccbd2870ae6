// Scheduler values from the spec and from torch, noise addressing and replay, whole-generation determinism, the
// samplers against a numpy reference (tools/make_sampler_fixture.py), and the refresh pass's context_noise and
// prompt switches against the block-causal definition.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>

#include "config/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/wan_dit.h"
#include "ops/ops.h"
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

TEST_CASE("warped timesteps are PyTorch's fp32 values bit for bit") {
  // torch 1.13 (CPU): t = 1000 * s * shift / (1 + (shift - 1) * s), s = torch.linspace(1, 0, 1001)[:-1], printed
  // with repr(t[i].item()). Indices 499-503 are where linspace switches from counting up from 1 to counting down
  // from 0, and 999 is in its scalar tail: a compiler-fused multiply-add or a linspace from one end only moves them.
  PipelineConfig config;
  config.denoising_steps = {1000, 750, 501, 500, 499, 497, 250, 1};
  const FlowMatchSchedule shift5(config);
  const std::vector<float> torch5 = {1000.0f, 937.5f, 833.8881225585938f, 833.3333129882812f, 832.7770385742188f,
                                     831.6598510742188f, 625.0f, 4.9800801277160645f};
  for (size_t i = 0; i < torch5.size(); ++i) {
    CAPTURE(i);
    CHECK(shift5.timesteps()[i] == double(torch5[i]));  // exact: the stored value is the fp32 entry
  }
  CHECK(shift5.sigmas()[3] == double(0.8333333134651184f));
  config.shift = 8.0;
  const FlowMatchSchedule shift8(config);
  const std::vector<float> torch8 = {1000.0f, 960.0f, 889.2833251953125f, 888.888916015625f, 888.4932250976562f,
                                     887.6981201171875f, 727.2727661132812f, 7.944390296936035f};
  for (size_t i = 0; i < torch8.size(); ++i) {
    CAPTURE(i);
    CHECK(shift8.timesteps()[i] == double(torch8[i]));
  }
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

// Tolerances against the numpy reference (tools/make_sampler_fixture.py) and the block-causal definition, from
// the differences measured on 2026-12-07 with their margins:
// - schedule, relative: measured 0 except the euler case's step 2 (749.99994 vs 750, sigma 0.74999994 vs 0.75: one
//   fp32 ulp, 8.1e-8 relative, from the two linspaces below); 2.5e-7 is 3x that, and a wrong shift, warp or
//   nearest-entry lookup moves a sigma by more than 1e-3.
// - latents, absolute (values of order 1): measured 0 for both renoise cases, 4.8e-7 for euler (that sigma ulp times
//   v); 1e-6 is 2x, about 4 fp32 ulps at 2, while a draw taken at the wrong step or a sigma off by one step moves
//   elements by 0.1 or more.
// - context_noise against the block-causal definition: measured 0 (the CPU paths sum in the same order); 1e-6 as in
//   the prompt-switch test, for f32 reordering.
constexpr double kScheduleTolerance = 2.5e-7;
constexpr double kSamplerTolerance = 1e-6;
constexpr double kContextNoiseTolerance = 1e-6;

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

TEST_CASE("keep_latents false: the same chunks, none kept, unless a recaching schedule needs them") {
  const RunConfig run = tiny_run(9);
  const Tensor context = test::random_tensor({5, 12}, 2);
  const WanDiT model(run.model, random_weights(run.model));
  auto backend = make_attention_backend(run.attention);
  ArPipeline pipeline(run.pipeline, model, *backend);
  auto noise_kept = make_philox_noise(7, noise_shape(run));
  const Tensor kept = pipeline.generate(context, *noise_kept, {});
  // The chunks streamed to on_chunk, hashed in order, are the kept tensor's bytes (bench's digest relies on it).
  Sha256 streamed;
  std::vector<float> streamed_values;
  GenerateCallbacks callbacks;
  callbacks.keep_latents = false;
  callbacks.on_chunk = [&](const ChunkReport&, const Tensor& chunk) {
    streamed.update(chunk.raw(), chunk.nbytes());
    const float* values = chunk.f32();
    streamed_values.insert(streamed_values.end(), values, values + chunk.numel());
  };
  auto noise_streamed = make_philox_noise(7, noise_shape(run));
  const Tensor none = pipeline.generate(context, *noise_streamed, callbacks);
  CHECK_FALSE(none.defined());
  REQUIRE(int64_t(streamed_values.size()) == kept.numel());
  CHECK(std::memcmp(streamed_values.data(), kept.raw(), kept.nbytes()) == 0);
  CHECK(streamed.hex_digest() == sha256_hex(kept));
  // A schedule that recaches replays the earlier chunks from their latents: they are kept, and the run is the same.
  const std::vector<ContextSwitch> schedule = {{0, context}, {2, test::random_tensor({5, 12}, 3)}};
  auto noise_a = make_philox_noise(7, noise_shape(run));
  auto noise_b = make_philox_noise(7, noise_shape(run));
  const Tensor switched = pipeline.generate(schedule, *noise_a, {});
  GenerateCallbacks no_keep;
  no_keep.keep_latents = false;
  const Tensor switched_no_keep = pipeline.generate(schedule, *noise_b, no_keep);
  REQUIRE(switched_no_keep.defined());
  CHECK(std::memcmp(switched.raw(), switched_no_keep.raw(), switched.nbytes()) == 0);
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
  // Decimal values print as written (not 0.97999999999999998) and read back as the same doubles.
  const RunConfig decimals = parse_run_config(model, "x", {"pipeline.shift=0.98", "model.eps=1e-6"});
  const std::string printed = to_yaml(decimals);
  CHECK(printed.find("shift: 0.98\n") != std::string::npos);
  CHECK(printed.find("eps: 1e-06\n") != std::string::npos);
  CHECK(parse_run_config(printed, "round-trip").pipeline.shift == decimals.pipeline.shift);
}

namespace {

// Chunk `chunk` of a generation that switched to `cross` there with a recache, computed from the definition: each
// denoising step is one block-causal forward over [the earlier chunks' clean latents at the context timestep, the
// chunk's current x at the step's timestep] under the new prompt, and the sampler's update applied by hand.
// The step timesteps and sigmas and the context timestep are given, so a caller can take them from an independent
// source (the numpy fixture) instead of the FlowMatchSchedule under test.
struct StepValues {
  std::vector<double> timesteps, sigmas;
  double context_timestep = 0;
};

Tensor recached_chunk_reference(const RunConfig& run, const WanDiT& model, const CrossAttentionCache& cross,
                                const Tensor& earlier_latents, int64_t chunk, NoiseSource& noise,
                                const StepValues& schedule) {
  const int64_t chunk_frames = run.pipeline.chunk_frames, past_frames = earlier_latents.dim(0);
  BlockCausalSelfAttention block_causal(KvCacheConfig{}, chunk_frames, model.rope_grid(), model.config().head_dim());
  Tensor x = noise.initial(chunk), x0;
  const size_t steps = schedule.timesteps.size();
  for (size_t step = 0; step < steps; ++step) {
    Tensor sequence = Tensor::empty({past_frames + chunk_frames, x.dim(1), x.dim(2), x.dim(3)});
    std::memcpy(sequence.raw(), earlier_latents.raw(), earlier_latents.nbytes());
    std::memcpy(static_cast<char*>(sequence.raw()) + earlier_latents.nbytes(), x.raw(), x.nbytes());
    std::vector<double> timesteps(size_t(past_frames), schedule.context_timestep);
    timesteps.resize(size_t(past_frames + chunk_frames), schedule.timesteps[step]);
    const Tensor velocity =
        model.forward(sequence, timesteps, cross, block_causal).slice_rows(past_frames, past_frames + chunk_frames);
    const float sigma = float(schedule.sigmas[step]);
    x0 = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) x0.f32()[i] = float(double(x.f32()[i]) - sigma * double(velocity.f32()[i]));
    if (step + 1 < steps) {
      const double next = schedule.sigmas[step + 1];
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
  const FlowMatchSchedule schedule(run.pipeline);
  const Tensor reference = recached_chunk_reference(
      run, model, model.build_cross_cache(prompt_b), recached.slice_rows(0, 6).clone(), 2, *noise,
      {schedule.timesteps(), schedule.sigmas(), schedule.context_timestep()});
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

namespace {

// tools/make_sampler_fixture.py: seeded noise (the file is also a valid --noise file), a head bias, and per case
// the timesteps, sigmas and latents numpy computes from the documented formulas. A missing file fails the test.
const std::string kSamplerFixture = std::string(LF_FIXTURES_DIR) + "/sampler/sampler_reference.safetensors";

std::vector<double> fixture_values(const Checkpoint& file, const std::string& name) {
  const Tensor tensor = file.view(name);
  REQUIRE(tensor.dtype() == DType::F64);
  const double* first = static_cast<const double*>(tensor.raw());
  return std::vector<double>(first, first + tensor.numel());
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double difference = std::abs(double(a.f32()[i]) - double(b.f32()[i]));
    if (!(difference <= worst)) worst = difference;  // NaN propagates: a NaN difference is never <= anything
  }
  return worst;
}

// The cases of tools/make_sampler_fixture.py (CASES there): name, sampler, shift, warp, denoising steps.
struct SamplerCase {
  std::string name, sampler;
  double shift;
  bool warp;
  std::vector<double> steps;
};
const std::vector<SamplerCase> kSamplerCases = {
    {"renoise_shift5_warp", "renoise", 5.0, true, {1000, 750, 500, 250}},
    {"renoise_shift8_plain", "renoise", 8.0, false, {1000, 757, 522}},
    {"euler_shift3_warp", "euler", 3.0, true, {1000, 750, 500, 250}},
};

}  // namespace

TEST_CASE("renoise and Euler samplers equal a numpy reference of the documented formulas") {
  const auto fixture = SafetensorsCheckpoint::open(kSamplerFixture);
  const Tensor context = test::random_tensor({5, 12}, 41);
  for (const SamplerCase& sampler_case : kSamplerCases) {
    CAPTURE(sampler_case.name);
    RunConfig run = tiny_run(6);  // 2 chunks, latents [6, 3, 4, 6], patch 1x2x2
    run.pipeline.sampler = sampler_case.sampler;
    run.pipeline.shift = sampler_case.shift;
    run.pipeline.warp = sampler_case.warp;
    run.pipeline.denoising_steps = sampler_case.steps;
    // The schedule. numpy's linspace rounds once from the exact value, torch's fp32 fill (which the engine follows,
    // pinned bit for bit by the torch-measured test above) accumulates in fp32: they differ by an ulp at 430 of
    // the 1001 entries, among them index 500 (0.5 vs 0.49999994), which only shift 3 turns into a different sigma.
    const FlowMatchSchedule schedule(run.pipeline);
    const std::vector<double> timesteps = fixture_values(*fixture, "timesteps_" + sampler_case.name);
    const std::vector<double> sigmas = fixture_values(*fixture, "sigmas_" + sampler_case.name);
    REQUIRE(schedule.timesteps().size() == timesteps.size());
    REQUIRE(schedule.sigmas().size() == sigmas.size());
    for (size_t step = 0; step < timesteps.size(); ++step) {
      CAPTURE(step);
      CHECK(std::abs(schedule.timesteps()[step] - timesteps[step]) <= kScheduleTolerance * timesteps[step]);
      CHECK(std::abs(schedule.sigmas()[step] - sigmas[step]) <= kScheduleTolerance * sigmas[step]);
    }
    // The whole chunk loop. A zero head weight makes every token's velocity the head bias, whatever the random
    // blocks compute, so numpy knows v without a DiT; the sampler's arithmetic, the order and addressing of the
    // noise draws and the choice of output (the last x0) are what is compared.
    WanWeights weights = random_weights(run.model);
    weights.head.weight = Tensor::zeros(weights.head.weight.shape());
    weights.head.bias = fixture->view("head_bias").clone();
    const WanDiT model(run.model, std::move(weights));
    auto backend = make_attention_backend(run.attention);
    auto noise = make_file_noise(kSamplerFixture, noise_shape(run));
    ArPipeline pipeline(run.pipeline, model, *backend);
    const Tensor latents = pipeline.generate(context, *noise, {});
    const double difference = max_abs_difference(latents, fixture->view("latents_" + sampler_case.name).clone());
    MESSAGE(sampler_case.name << ": largest difference from numpy " << difference);
    CHECK(difference < kSamplerTolerance);
  }
}

TEST_CASE("context_noise > 0: later chunks see the earlier chunks' clean x0 at t = context_noise") {
  // docs/decisions.md: the refresh pass feeds the chunk's clean x0 at timestep context_noise, no noise added (the
  // Self-Forcing inference loop). The reference is the block-causal definition: one forward over [earlier chunks'
  // latents at t = context_noise, this chunk's x at the step's timestep], with the steps' timesteps and sigmas from
  // the numpy fixture, not from the schedule or the KV cache under test.
  const auto fixture = SafetensorsCheckpoint::open(kSamplerFixture);
  RunConfig run = tiny_run(9);  // 3 chunks, Self-Forcing's default steps (the fixture's renoise_shift5_warp case)
  const Tensor prompt = test::random_tensor({5, 12}, 42);
  const WanDiT model(run.model, random_weights(run.model));
  auto generate_at = [&](double context_noise) {
    RunConfig variant = run;
    variant.pipeline.context_noise = context_noise;
    auto backend = make_attention_backend(variant.attention);
    auto noise = make_philox_noise(9, noise_shape(variant));
    ArPipeline pipeline(variant.pipeline, model, *backend);
    return pipeline.generate(prompt, *noise, {});
  };
  const Tensor clean = generate_at(0), noised = generate_at(500);
  const CrossAttentionCache cross = model.build_cross_cache(prompt);
  const StepValues steps{fixture_values(*fixture, "timesteps_renoise_shift5_warp"),
                         fixture_values(*fixture, "sigmas_renoise_shift5_warp"), 500};
  for (int64_t chunk : {1, 2}) {
    CAPTURE(chunk);
    auto noise = make_philox_noise(9, noise_shape(run));
    const Tensor reference =
        recached_chunk_reference(run, model, cross, noised.slice_rows(0, 3 * chunk).clone(), chunk, *noise, steps);
    const double error = test::rel_l2(noised.slice_rows(3 * chunk, 3 * chunk + 3).clone(), reference);
    MESSAGE("context_noise 500, chunk " << chunk << ": rel-L2 to the block-causal definition " << error);
    CHECK(error < kContextNoiseTolerance);
    // The level matters: the same chunk with context_noise 0 is another result.
    CHECK(test::rel_l2(noised.slice_rows(3 * chunk, 3 * chunk + 3).clone(),
                       clean.slice_rows(3 * chunk, 3 * chunk + 3).clone()) > 1e-3);
  }
  // Chunk 0 sees no context: identical either way.
  CHECK(test::rel_l2(noised.slice_rows(0, 3).clone(), clean.slice_rows(0, 3).clone()) == 0.0);
}

namespace {
// A stand-in for a sparse backend with a known, chunk-local error: dense attention scaled by 0.9. `exact_below`:
// chunks before it (denoising and refresh alike) run exact dense, so a free-running run of it has dense history
// up to that chunk, which is what teacher forcing promises for every chunk.
class ScaledDenseAttention : public AttentionBackend {
 public:
  explicit ScaledDenseAttention(int64_t exact_below = 0) : exact_below_(exact_below) {}
  std::string name() const override { return "scaled-dense"; }
  Tensor run(const AttentionCall& call) override {
    const Tensor out = dense_->run(call);
    return call.chunk < exact_below_ ? out : ops::axpby(0.9, out, 0.0, out);
  }

 private:
  int64_t exact_below_;
  std::unique_ptr<AttentionBackend> dense_ = make_attention_backend(AttentionConfig{});
};
}  // namespace

TEST_CASE("teacher forcing: each chunk from the reference's history, equal to a run whose history was dense") {
  const RunConfig run = tiny_run(12);  // 4 chunks of 3 latent frames
  const WanDiT model(run.model, random_weights(run.model));
  const Tensor context = test::random_tensor({5, 12}, 31);
  auto rollout = [&](AttentionBackend& attention, const TeacherForcing* teacher) {
    auto noise = make_philox_noise(11, noise_shape(run));
    ArPipeline pipeline(run.pipeline, model, attention);
    return pipeline.generate({{0, context}}, *noise, {}, teacher);
  };
  auto dense_attention = make_attention_backend(run.attention);
  REQUIRE(dense_attention->name() == "dense");
  const Tensor dense = rollout(*dense_attention, nullptr);
  const TeacherForcing teacher{dense, dense_attention.get()};

  // Dense under teacher forcing by dense is dense, bit for bit: the refresh passes rebuild the same cache.
  const Tensor dense_forced = rollout(*dense_attention, &teacher);
  CHECK(std::memcmp(dense_forced.raw(), dense.raw(), dense.nbytes()) == 0);

  ScaledDenseAttention scaled;
  const Tensor free_running = rollout(scaled, nullptr);
  const Tensor forced = rollout(scaled, &teacher);
  auto chunk = [](const Tensor& latents, int64_t i) { return latents.slice_rows(3 * i, 3 * i + 3).clone(); };
  // Chunk 0 has no history: forced and free-running agree exactly.
  CHECK(std::memcmp(chunk(forced, 0).raw(), chunk(free_running, 0).raw(), chunk(forced, 0).nbytes()) == 0);
  for (int64_t i = 1; i < 4; ++i) {
    CAPTURE(i);
    // The definition, built without teacher forcing: a free run whose attention is exact dense before chunk i
    // and scaled from chunk i on has the dense history at chunk i; its chunk i is the teacher-forced chunk i.
    ScaledDenseAttention from_i(i);
    const Tensor reference = rollout(from_i, nullptr);
    CHECK(test::rel_l2(chunk(forced, i), chunk(reference, i)) == 0.0);
    // The history matters: the free-running chunk (scaled history) differs from the teacher-forced one.
    CHECK(test::rel_l2(chunk(forced, i), chunk(free_running, i)) > 1e-4);
  }
  // The error of a teacher-forced chunk against dense is its own: every chunk is off, none exact.
  for (int64_t i = 0; i < 4; ++i) CHECK(test::rel_l2(chunk(forced, i), chunk(dense, i)) > 1e-4);

  // A reference of another length is refused.
  const TeacherForcing short_teacher{dense.slice_rows(0, 6).clone(), dense_attention.get()};
  CHECK_THROWS_WITH_AS(rollout(scaled, &short_teacher), doctest::Contains("teacher forcing"), Error);
}
