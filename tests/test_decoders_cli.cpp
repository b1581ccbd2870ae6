// `lightforce decode` end to end: outputs for each decoder, streaming through the CLI (--chunk-frames does not
// change a bit), and bad input (one line, exit 1, nothing at any output path). Random weights keep it fast.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/tensor.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace lf;
using test::run;
using test::fresh_tmp_path;

namespace {


// Latents [frames, channels, 4, 6] in the layout generate --save-latents writes.
std::string write_latents(const std::string& name, int64_t frames, int64_t channels, float poison = 0.0f) {
  Tensor latents = test::random_tensor({frames, channels, 4, 6}, 7, 2.0f);
  if (poison != 0.0f) latents.f32()[latents.numel() / 2] = poison;
  const std::string path = fresh_tmp_path(name);
  write_safetensors(path, {{"latents", latents}}, {{"format", "lightforce-latents"}});
  return path;
}

int lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST_CASE("decode: lightvae and taehv write an MP4, frames and a [3, F, H, W] tensor; chunking changes nothing") {
  const std::string latents = write_latents("dec_z.safetensors", 5, 16);
  for (const char* decoder : {"lightvae", "taehv"}) {
    CAPTURE(decoder);
    const std::string mp4 = fresh_tmp_path(std::string("dec_") + decoder + ".mp4");
    const std::string frames = fresh_tmp_path(std::string("dec_frames_") + decoder);
    const std::string tensor_a = fresh_tmp_path(std::string("dec_a_") + decoder + ".safetensors");
    const std::string tensor_b = fresh_tmp_path(std::string("dec_b_") + decoder + ".safetensors");
    const auto result =
        run(fmt::format("decode --latents {} --decoder {} --vae-weights random -o {} --frames-dir {} "
                        "--save-video-tensor {} --chunk-frames 3 -q",
                        latents, decoder, mp4, frames, tensor_a));
    REQUIRE_MESSAGE(result.exit_code == 0, result.err);
    CHECK(fs::file_size(mp4) > 0);
    const int64_t video_frames = 1 + 4 * (5 - 1);
    CHECK(std::distance(fs::directory_iterator(frames), fs::directory_iterator()) == video_frames);
    const auto a = Checkpoint::open(tensor_a);
    const Tensor video = a->view("video");
    CHECK(video.shape() == Shape{3, video_frames, 32, 48});
    const auto [low, high] = std::minmax_element(video.f32(), video.f32() + video.numel());
    CHECK(*low >= 0.0f);
    CHECK(*high <= 1.0f);
    CHECK(*high - *low > 0.1f);
    // One latent per call: the same bytes.
    const auto again =
        run(fmt::format("decode --latents {} --decoder {} --vae-weights random --save-video-tensor {} "
                        "--chunk-frames 1 -q",
                        latents, decoder, tensor_b));
    REQUIRE_MESSAGE(again.exit_code == 0, again.err);
    const Tensor other = Checkpoint::open(tensor_b)->view("video");
    REQUIRE(other.shape() == video.shape());
    CHECK(std::memcmp(other.raw(), video.raw(), video.nbytes()) == 0);
  }
}

TEST_CASE("decode: bad input is one line, exit 1, and nothing at the output paths") {
  const std::string good = write_latents("dec_good.safetensors", 2, 16);
  const std::string nan = write_latents("dec_nan.safetensors", 2, 16, NAN);
  const std::string inf = write_latents("dec_inf.safetensors", 2, 16, INFINITY);
  const std::string three = write_latents("dec_3ch.safetensors", 2, 3);
  const std::string wrong_weights = fresh_tmp_path("dec_wrong_weights.safetensors");
  write_safetensors(wrong_weights, {{"conv2.weight", test::random_tensor({16, 16, 1, 1, 2}, 3)}}, {});
  struct Case {
    std::string args, culprit;
  };
  const Case cases[] = {
      {"--latents " + nan + " --decoder lightvae --vae-weights random", "non-finite"},
      {"--latents " + inf + " --decoder taehv --vae-weights random", "non-finite"},
      {"--latents " + three + " --decoder lightvae --vae-weights random", "16 latent channels"},
      {"--latents " + good + " --decoder nope --vae-weights random", "'nope'"},
      {"--latents " + good + " --decoder lightvae --vae-weights " + wrong_weights, "conv2.weight"},
      {"--latents " + good + " --decoder lightvae", "--vae-weights"},
      {"--latents " + test::tmp_path("dec_missing.safetensors") + " --decoder taehv --vae-weights random",
       "dec_missing.safetensors"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.args);
    const std::string mp4 = fresh_tmp_path("dec_bad.mp4"), tensor = fresh_tmp_path("dec_bad.safetensors"), dir = fresh_tmp_path("dec_bad_dir");
    const auto result =
        run(fmt::format("decode {} -o {} --save-video-tensor {} --frames-dir {} -q", c.args, mp4, tensor, dir));
    CHECK(result.exit_code == 1);
    CHECK(lines(result.err) == 1);
    CHECK(result.err.find(c.culprit) != std::string::npos);
    CHECK(!fs::exists(mp4));
    CHECK(!fs::exists(tensor));
    CHECK(!fs::exists(dir));
  }
  CHECK(run("decode --latents " + good).exit_code == 2);  // nothing to write: a usage error
}

TEST_CASE("generate: --decoder is checked before any work and names the decoder") {
  const auto unknown = run("generate -m tiny --frames 3 --decoder nope -o " + fresh_tmp_path("gen_bad.mp4") + " -q");
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("'nope'") != std::string::npos);
  // The tiny model makes 3-channel latents: the Wan VAE refuses them by name, and no MP4 appears.
  const std::string mp4 = fresh_tmp_path("gen_vae.mp4");
  const auto mismatch =
      run("generate -m tiny --frames 3 -p \"a red circle\" --decoder lightvae --vae-weights random -q -o " + mp4);
  CHECK(mismatch.exit_code == 1);
  CHECK(mismatch.err.find("lightvae") != std::string::npos);
  CHECK(!fs::exists(mp4));
}

TEST_CASE("bench --decoder and --text-encoder: the decode and encode stages in the JSON report") {
  // A 1-layer 1.3B-shaped DiT at 64x64 (8x8 latents, 16 channels, what the Wan decoders read), 6 latent frames.
  const test::RunResult result =
      run("bench --set model.layers=1 --sizes 64x64 --frames 6 --decoder taehv --text-encoder umt5-tiny --tokens 9 "
          "--repeat 2 --device cpu --json -q");
  REQUIRE_MESSAGE(result.exit_code == 0, result.err);
  const auto report = nlohmann::json::parse(result.out);
  const auto& row = report["rows"][0];
  const auto& decode = row["decode"];
  CHECK(decode["decoder"] == "taehv");
  CHECK(decode["video_frames"] == 6 * 4 - 3);  // TAEHV: 4 frames a latent, the first 3 trimmed
  REQUIRE(decode["per_chunk_seconds"].size() == 2);  // two 3-frame chunks
  CHECK(decode["seconds"].get<double>() > 0);
  const double first = row["first_frame_seconds"].get<double>();
  CHECK(first == doctest::Approx(row["per_chunk_seconds"][0].get<double>() + decode["per_chunk_seconds"][0].get<double>()));
  CHECK(row["frames_per_second_with_decode"].get<double>() <
        21.0 / row["dense_dit_seconds"].get<double>());  // decoding costs something
  const auto& text = report["text_encoder"];
  CHECK(text["tokens"] == 9);
  CHECK(text["encode_ms"].size() == 2);
  CHECK(text["median_encode_ms"].get<double>() > 0);
  const test::RunResult bad = run("bench --sizes 64x64 --frames 3 --set model.layers=1 --decoder vqgan --device cpu -q");
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("vqgan") != std::string::npos);
}
