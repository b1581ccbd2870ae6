// CI gates through the binary (docs/cli.md, "CI gates"): compare-dense --fail-below / --fail-above pass on a
// faithful setting and fail (exit 1, one line, the report still written) on a deliberately wrong one; a saved
// --reference is compared against and refused when made with other settings; --expect-sha256 passes on the
// digest sha256sum computes and fails, keeping the file, on another. Thresholds are fixed numbers, digests come
// from coreutils' sha256sum: nothing here is computed by the code under test.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using lf::test::fresh_tmp_path;
using lf::test::read_bytes;
using lf::test::run;
using lf::test::RunResult;

// Two chunks of the random `tiny` model: a second or two per run on two cores.
const std::string kTiny = "-m tiny --quiet --prompt 'a red circle moves right' --frames 6 --seed 5 ";
// block-topk keeping every block computes what dense computes (the faithful setting); keeping 5% of the blocks
// (sparsity 0.95) is the deliberately wrong backend setting a gate must catch.
const std::string kFaithful = "--attention block-topk --set attention.sparsity=0 ";
const std::string kWrong = "--attention block-topk --set attention.sparsity=0.95 ";

// sha256sum's digest of a file: an implementation independent of lightforce's.
std::string sha256sum(const std::string& path) {
  FILE* pipe = popen(("sha256sum '" + path + "'").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char digest[65] = {};
  const size_t read = fread(digest, 1, 64, pipe);
  pclose(pipe);
  REQUIRE(read == 64);
  return std::string(digest, 64);
}

int lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_bytes(path)); }

}  // namespace

TEST_CASE("compare-dense --fail-below passes a faithful backend and fails a wrong one, report written either way") {
  const std::string good = fresh_tmp_path("gates_good"), bad = fresh_tmp_path("gates_bad");
  // Not quiet: each pass, the attention-error pass included, reports its chunks.
  const RunResult pass = run("compare-dense -m tiny --prompt 'a red circle moves right' --frames 6 --seed 5 " +
                             kFaithful + "--no-videos --fail-below psnr=40,ssim=0.99 --fail-below mean:psnr=40 "
                             "--out-dir " + good);
  CAPTURE(pass.err);
  CHECK(pass.exit_code == 0);
  CHECK(pass.err.find("dense  chunk 2/2") != std::string::npos);
  CHECK(pass.err.find("error pass chunk 2/2") != std::string::npos);
  CHECK(pass.err.find("gate failed") == std::string::npos);
  const nlohmann::json passed = read_json(good + "/compare-dense.json");
  CHECK(passed["gates"]["passed"] == true);
  CHECK(passed["gates"]["thresholds"].size() == 3);

  const RunResult fail = run("compare-dense " + kTiny + kWrong + "--no-videos --fail-below psnr=40 --out-dir " + bad);
  CAPTURE(fail.err);
  CHECK(fail.exit_code == 1);
  CHECK(lines(fail.err) == 1);
  CHECK(fail.err.find("gate failed: chunk ") != std::string::npos);
  CHECK(fail.err.find("psnr") != std::string::npos);
  CHECK(fail.err.find("is below 40 (--fail-below psnr=40)") != std::string::npos);
  // The evidence stays: the report, with the crossing recorded and the measured chunk PSNR below the line.
  REQUIRE(fs::exists(bad + "/compare-dense.json"));
  const nlohmann::json failed = read_json(bad + "/compare-dense.json");
  CHECK(failed["gates"]["passed"] == false);
  bool some_chunk_below = false;
  for (const auto& chunk : failed["chunks"]) some_chunk_below |= chunk["psnr"].get<double>() < 40;
  CHECK(some_chunk_below);
}

TEST_CASE("compare-dense gates on the whole video (mean:) and on metrics that must stay low (--fail-above)") {
  const std::string out = fresh_tmp_path("gates_mean");
  const RunResult mean = run("compare-dense " + kTiny + kWrong + "--no-videos --fail-below mean:ssim=0.999999 "
                             "--out-dir " + out);
  CAPTURE(mean.err);
  CHECK(mean.exit_code == 1);
  CHECK(lines(mean.err) == 1);
  CHECK(mean.err.find("gate failed: mean: ssim ") != std::string::npos);
  const RunResult above = run("compare-dense " + kTiny + kWrong + "--no-videos --fail-above latent_rel_l2=0.0001 "
                              "--out-dir " + out);
  CAPTURE(above.err);
  CHECK(above.exit_code == 1);
  CHECK(above.err.find("latent_rel_l2") != std::string::npos);
  CHECK(above.err.find("is above 0.0001 (--fail-above latent_rel_l2=0.0001)") != std::string::npos);
}

TEST_CASE("--reference: a saved run is the baseline; other settings are refused before any work") {
  const std::string reference = fresh_tmp_path("gates_reference"), out = fresh_tmp_path("gates_vs_reference");
  // The good commit: the faithful backend's run, saved.
  const RunResult saved = run("compare-dense " + kTiny + kFaithful + "--json --save-reference " + reference);
  CAPTURE(saved.err);
  REQUIRE(saved.exit_code == 0);
  CHECK(nlohmann::json::parse(saved.out) == read_json(reference + "/reference.json"));
  CHECK(fs::exists(reference + "/reference.json"));
  CHECK(fs::exists(reference + "/run.safetensors"));
  CHECK(!fs::exists(reference + "/compare-dense.json"));  // saving compares nothing
  const nlohmann::json description = read_json(reference + "/reference.json");
  CHECK(description["schema_version"] == 1);
  CHECK(description["prompt"] == "a red circle moves right");
  CHECK(description["seed"] == 5);

  // The same command on "the PR": the same bytes, so every frame is identical (PSNR at its 100 dB cap).
  const RunResult same = run("compare-dense " + kTiny + kFaithful + "--no-videos --fail-below psnr=99.9 --reference " +
                             reference + " --out-dir " + out);
  CAPTURE(same.err);
  CHECK(same.exit_code == 0);
  const nlohmann::json report = read_json(out + "/compare-dense.json");
  CHECK(report["baseline"] == "reference");
  for (const auto& chunk : report["chunks"]) CHECK(chunk["identical_frames"] == chunk["frames"]);

  // A PR that broke the backend (here: the wrong setting) fails the same gate.
  const RunResult broken = run("compare-dense " + kTiny + kWrong + "--no-videos --fail-below psnr=40 --reference " +
                               reference + " --out-dir " + out);
  CAPTURE(broken.err);
  CHECK(broken.exit_code == 1);
  CHECK(broken.err.find("gate failed: chunk") != std::string::npos);

  // Other settings: refused in one line naming the setting and both values, before the model loads.
  struct Mismatch {
    std::string flags, culprit;
  };
  for (const Mismatch& mismatch :
       {Mismatch{"--seed 6", "pipeline.seed '5', this run has '6'"},
        Mismatch{"--frames 9", "pipeline.frames '6', this run has '9'"},
        Mismatch{"--prompt 'a blue square falls'", "prompt 'a red circle moves right', this run has 'a blue square falls'"},
        Mismatch{"--set model.latent_height=16", "model.latent_height"},
        Mismatch{"-m testbed", "model.name 'tiny-random', this run has 'testbed'"}}) {
    CAPTURE(mismatch.flags);
    std::string command = "compare-dense " + kTiny + kFaithful + "--reference " + reference + " --out-dir " + out +
                          " " + mismatch.flags;
    if (mismatch.flags.find("--prompt") != std::string::npos) {
      command = "compare-dense -m tiny --quiet --frames 6 --seed 5 " + kFaithful + mismatch.flags + " --reference " +
                reference + " --out-dir " + out;
    }
    const RunResult refused = run(command);
    CAPTURE(refused.err);
    CHECK(refused.exit_code == 1);
    CHECK(lines(refused.err) == 1);
    CHECK(refused.err.find("--reference '" + reference + "' was made with " + mismatch.culprit) != std::string::npos);
  }
  const RunResult missing = run("compare-dense " + kTiny + "--reference " + fresh_tmp_path("gates_no_reference"));
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no reference.json there") != std::string::npos);
}

TEST_CASE("--expect-sha256: generate and decode pass on the right digest, fail on another and keep the file") {
  const std::string latents = fresh_tmp_path("gates_latents.safetensors");
  const std::string generate = "generate " + kTiny + "--no-video --save-latents " + latents;
  REQUIRE(run(generate).exit_code == 0);
  const std::string digest = sha256sum(latents);
  const RunResult match = run(generate + " --expect-sha256 " + digest);
  CAPTURE(match.err);
  CHECK(match.exit_code == 0);
  CHECK(match.err.empty());
  const RunResult named = run(generate + " --expect-sha256 latents=" + digest);
  CHECK(named.exit_code == 0);
  std::string other = digest;
  other[0] = other[0] == '0' ? '1' : '0';
  const RunResult mismatch = run(generate + " --expect-sha256 " + other);
  CAPTURE(mismatch.err);
  CHECK(mismatch.exit_code == 1);
  CHECK(lines(mismatch.err) == 1);
  CHECK(mismatch.err.find("the latents '" + latents + "' has sha256 " + digest + ", expected " + other) !=
        std::string::npos);
  CHECK(fs::exists(latents));  // the evidence stays

  const std::string tensor = fresh_tmp_path("gates_video_tensor.safetensors");
  const std::string decode = "decode --quiet --decoder pixel --latents " + latents + " --save-video-tensor " + tensor;
  REQUIRE(run(decode).exit_code == 0);
  const std::string tensor_digest = sha256sum(tensor);
  CHECK(run(decode + " --expect-sha256 video_tensor=" + tensor_digest).exit_code == 0);
  const RunResult decode_mismatch = run(decode + " --expect-sha256 " + other);
  CHECK(decode_mismatch.exit_code == 1);
  CHECK(decode_mismatch.err.find("the video_tensor '" + tensor + "' has sha256") != std::string::npos);
}

#if LF_WITH_FFMPEG
TEST_CASE("--expect-sha256 on generate's MP4 (the default kind when a video is written)") {
  const std::string video = fresh_tmp_path("gates_video.mp4");
  const std::string generate = "generate " + kTiny + "-o " + video;
  REQUIRE(run(generate).exit_code == 0);
  const std::string digest = sha256sum(video);
  CHECK(run(generate + " --expect-sha256 " + digest).exit_code == 0);
  const RunResult wrong = run(generate + " --expect-sha256 video=" + std::string(64, 'a'));
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.err.find("the video '" + video + "'") != std::string::npos);
  CHECK(sha256sum(video) == digest);  // kept, and the same bytes as before
}
#endif

TEST_CASE("a bad sweep is refused before the dense baseline runs") {
  // Not quiet: had the dense run started, its chunk lines would be on stderr before the error.
  for (const std::string& sweep : {std::string("--sweep attention.sparsity=0.5,2"),
                                   std::string("--sweep attention.backend=block-topk,magic"),
                                   std::string("--sweep attention.sparsity=0.5 --sweep attention.sparsity=0.6")}) {
    CAPTURE(sweep);
    const RunResult refused = run("compare-dense -m tiny --prompt 'a red circle' --frames 6 --attention block-topk " +
                                  sweep + " --out-dir " + fresh_tmp_path("gates_sweep"));
    CAPTURE(refused.err);
    CHECK(refused.exit_code == 1);
    CHECK(lines(refused.err) == 1);
    CHECK(refused.err.find("chunk") == std::string::npos);
  }
}
