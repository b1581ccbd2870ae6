// The binary end to end: what a user or a CI script sees (exit codes, one-line errors, files or their absence).
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <cstring>

#include "io/checkpoint.h"
#include "io/video_reader.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using lf::test::run;
using lf::test::fresh_tmp_path;
using lf::test::RunResult;

using lf::test::read_bytes;

bool has_temp_leftovers(const std::string& final_path) {
  const fs::path dir = fs::path(final_path).parent_path();
  const std::string stem = fs::path(final_path).filename().string() + ".tmp-";
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind(stem, 0) == 0) return true;
  return false;
}

// A small, fast generation: 6 latent frames (2 chunks) of the random `tiny` model (the default testbed model is
// tested in test_testbed).
const std::string kQuick = "generate -m tiny --quiet --prompt 'a red circle moves right' --frames 6 ";
const std::string kQuickArgs = "-m tiny --quiet --prompt 'a red circle moves right' ";

}  // namespace

TEST_CASE("--set takes a YAML list (the flag parser's comma split is undone)") {
  const RunResult printed = run("generate -m tiny --set pipeline.denoising_steps=[1000,500] --set pipeline.shift=8,"
                                "pipeline.seed=3 --print-config");
  REQUIRE_MESSAGE(printed.exit_code == 0, printed.err);
  CHECK(printed.out.find("denoising_steps: [1000, 500]") != std::string::npos);
  CHECK(printed.out.find("shift: 8") != std::string::npos);  // two assignments in one --set still split
  CHECK(printed.out.find("seed: 3") != std::string::npos);
}

TEST_CASE("help and version") {
  CHECK(run("--help").exit_code == 0);
  CHECK(run("--version").out.find("lightforce") != std::string::npos);
  for (const char* command :
       {"generate", "batch", "merge-manifests", "inspect", "profile-sparsity", "compare-dense", "plan-mask", "bench",
        "check-prompts"}) {
    CAPTURE(command);
    CHECK(run(std::string(command) + " --help").exit_code == 0);
  }
  CHECK(run("frobnicate").exit_code == 2);
}

#if LF_WITH_FFMPEG
TEST_CASE("generate writes an MP4 with the right frames and size, deterministically") {
  const std::string video_a = fresh_tmp_path("cli_a.mp4"), video_b = fresh_tmp_path("cli_b.mp4");
  const std::string latents_a = fresh_tmp_path("cli_a_latents.safetensors"), latents_b = fresh_tmp_path("cli_b_latents.safetensors");
  const RunResult a = run(kQuick + "--seed 3 --json -o " + video_a + " --save-latents " + latents_a);
  REQUIRE(a.exit_code == 0);
  CHECK(a.out.find("\"video_frames\": 6") != std::string::npos);
  const lf::VideoInfo info = lf::probe_video(video_a);
  CHECK(info.frames == 6);
  CHECK(info.width == 256);
  CHECK(info.height == 256);
  CHECK(info.fps == doctest::Approx(16.0));
  REQUIRE(run(kQuick + "--seed 3 -o " + video_b + " --save-latents " + latents_b).exit_code == 0);
  CHECK(read_bytes(video_a) == read_bytes(video_b));
  CHECK(read_bytes(latents_a) == read_bytes(latents_b));
  const std::string video_c = fresh_tmp_path("cli_c.mp4");
  REQUIRE(run(kQuick + "--seed 4 -o " + video_c).exit_code == 0);
  CHECK(read_bytes(video_a) != read_bytes(video_c));
  CHECK_FALSE(has_temp_leftovers(video_a));
}
#endif

TEST_CASE("saved noise replays to the same latents; frames directory") {
  const std::string noise = fresh_tmp_path("cli_noise.safetensors");
  const std::string latents_a = fresh_tmp_path("cli_n_a.safetensors"), latents_b = fresh_tmp_path("cli_n_b.safetensors");
  const std::string frames = fresh_tmp_path("cli_frames");
  REQUIRE(run(kQuick + "--seed 11 --no-video --save-latents " + latents_a + " --save-noise " + noise +
              " --frames-dir " + frames).exit_code == 0);
  REQUIRE(run(kQuick + "--seed 999 --no-video --save-latents " + latents_b + " --noise " + noise).exit_code == 0);
  // The files' metadata name different noise sources; the latents themselves must be identical.
  const auto file_a = lf::Checkpoint::open(latents_a), file_b = lf::Checkpoint::open(latents_b);
  const lf::Tensor a = file_a->view("latents"), b = file_b->view("latents");
  REQUIRE(a.nbytes() == b.nbytes());
  CHECK(std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
  const RunResult embeddings_missing = run("generate --quiet --text-embeddings /nonexistent/e.safetensors --no-video "
                                           "--save-latents " + latents_b);
  CHECK(embeddings_missing.exit_code == 1);
  CHECK(embeddings_missing.err.find("/nonexistent/e.safetensors") != std::string::npos);
  int count = 0;
  for (const auto& entry : fs::directory_iterator(frames)) count += entry.is_regular_file();
  CHECK(count == 6);
  const RunResult inspect = run("inspect " + noise);
  CHECK(inspect.exit_code == 0);
  CHECK(inspect.out.find("renoise_c1_s3") != std::string::npos);
  CHECK(inspect.out.find("noise_initial") != std::string::npos);
}

// Bad input of every subcommand (exit codes, one-line errors, nothing left at the output path) is the table of
// tests/test_bad_input.cpp.

TEST_CASE("inspect reads headers and detects the layout") {
  const std::string weights = fresh_tmp_path("cli_weights.safetensors");
  // A checkpoint made by the engine itself: save the default model's random weights through generate? No such
  // command; use the I/O fixture with generator / generator_ema dicts instead.
  const RunResult result = run("inspect --json " + std::string(LF_FIXTURES_DIR) + "/io/state_dict.pt");
  CHECK(result.exit_code == 0);
  CHECK(result.out.find("\"format\": \"pytorch-zip\"") != std::string::npos);
  CHECK(result.out.find("generator_ema") != std::string::npos);
  const RunResult missing = run("inspect /nonexistent.pt");
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("/nonexistent.pt") != std::string::npos);
}

TEST_CASE("profile-sparsity and compare-dense produce their reports end to end") {
  const std::string profile = fresh_tmp_path("cli_profile"), compare = fresh_tmp_path("cli_compare");
  const RunResult p = run("profile-sparsity " + kQuickArgs + "--frames 9 --attention lightforcing-short --recall-row-stride 4 --json --out-dir " +
                          profile);
  REQUIRE(p.exit_code == 0);
  for (const char* file : {"sparsity.json", "sparsity.csv", "summary.md"}) CHECK(fs::exists(profile + "/" + file));
  CHECK(p.out.find("\"target_sparsity\"") != std::string::npos);
  CHECK(p.out.find("\"recall\"") != std::string::npos);
#if LF_WITH_OPENCV
  CHECK(fs::exists(profile + "/mask_c2_s0_l0_h0.png"));
#endif
  const RunResult c = run("compare-dense " + kQuickArgs + "--frames 6 --attention block-topk --json --out-dir " + compare);
  REQUIRE(c.exit_code == 0);
  CHECK(c.out.find("\"speedup\"") != std::string::npos);
  CHECK(c.out.find("\"ssim\"") != std::string::npos);
  CHECK(c.out.find("\"attention_output_rel_l2\"") != std::string::npos);
  {
    // Teacher-forced chunks beside the free-running ones; chunk 0 has no history, so the two agree there.
    const nlohmann::json report = nlohmann::json::parse(c.out);
    const auto& free_running = report.at("chunks");
    const auto& forced = report.at("teacher_forced_chunks");
    REQUIRE(forced.size() == free_running.size());
    REQUIRE(forced.size() == 2);
    CHECK(forced[0].at("latent_rel_l2") == free_running[0].at("latent_rel_l2"));
    CHECK(forced[0].at("psnr") == free_running[0].at("psnr"));
    CHECK(forced[1].at("latent_rel_l2").get<double>() > 0);
    CHECK(report.at("drift").at("threshold_db") == 3.0);
    CHECK(report.at("drift").contains("first_chunk"));
  }
  CHECK(fs::exists(compare + "/compare-dense.json"));
  CHECK(fs::exists(compare + "/compare-dense.md"));
#if LF_WITH_FFMPEG
  CHECK(lf::probe_video(compare + "/side_by_side.mp4").frames == 6);
#endif
  const RunResult bad = run("compare-dense " + kQuickArgs + "--attention dense --out-dir " + compare);
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("choose a sparse backend") != std::string::npos);
}

TEST_CASE("compare-dense: the headline averages only the chunks that differ from dense") {
  // lightforcing runs chunk 0 dense, so chunk 0 is identical to the dense run and chunks 1-2 differ: the headline
  // must be the mean of chunks 1-2 as the JSON lists them, computed here, not the all-frames mean that chunk 0's
  // 100 dB lifts.
  const std::string out = fresh_tmp_path("cli_headline");
  const RunResult c = run("compare-dense " + kQuickArgs + "--frames 9 --attention lightforcing-short --no-videos "
                          "--no-teacher-forced --json --out-dir " + out);
  REQUIRE_MESSAGE(c.exit_code == 0, c.err);
  const nlohmann::json report = nlohmann::json::parse(c.out);
  const auto& chunks = report.at("chunks");
  REQUIRE(chunks.size() == 3);
  REQUIRE(chunks[0].at("identical") == true);
  REQUIRE(chunks[0].at("psnr") == 100.0);
  double psnr_sum = 0, ssim_sum = 0, latent_sum = 0;
  for (size_t i = 1; i < chunks.size(); ++i) {
    REQUIRE(chunks[i].at("identical") == false);
    psnr_sum += chunks[i].at("psnr").get<double>();
    ssim_sum += chunks[i].at("ssim").get<double>();
    latent_sum += chunks[i].at("latent_rel_l2").get<double>();
  }
  const nlohmann::json& headline = report.at("differing_chunks_mean");
  CHECK(headline.at("differing_chunks") == 2);
  CHECK(headline.at("chunks") == 3);
  CHECK(headline.at("all_identical") == false);
  CHECK(headline.at("psnr").get<double>() == doctest::Approx(psnr_sum / 2).epsilon(1e-12));
  CHECK(headline.at("ssim").get<double>() == doctest::Approx(ssim_sum / 2).epsilon(1e-12));
  CHECK(headline.at("latent_rel_l2").get<double>() == doctest::Approx(latent_sum / 2).epsilon(1e-12));
  CHECK(report.at("total").at("psnr").get<double>() > headline.at("psnr").get<double>());  // lifted by chunk 0
  const std::string md = read_bytes(out + "/compare-dense.md");
  CHECK(md.find("| 0 | 3 | identical |") != std::string::npos);
  CHECK(md.find("mean over the 2 of 3 chunks that differ from dense") != std::string::npos);
}

TEST_CASE("compare-dense --sweep: sweep.csv ranks the points by the differing-chunk PSNR") {
  const std::string out = fresh_tmp_path("cli_sweep_rank");
  const RunResult s = run("compare-dense " + kQuickArgs + "--frames 6 --attention lightforcing-short --sweep "
                          "attention.sparsity=0.9,0.3 --out-dir " + out);
  REQUIRE_MESSAGE(s.exit_code == 0, s.err);
  std::istringstream csv(read_bytes(out + "/sweep.csv"));
  std::string line;
  std::getline(csv, line);
  auto split = [](const std::string& text) {
    std::vector<std::string> cells;
    std::stringstream stream(text);
    for (std::string cell; std::getline(stream, cell, ',');) cells.push_back(cell);
    if (!text.empty() && text.back() == ',') cells.emplace_back();
    return cells;
  };
  const std::vector<std::string> header = split(line);
  auto column = [&](const std::string& name) {
    const auto at = std::find(header.begin(), header.end(), name);
    REQUIRE_MESSAGE(at != header.end(), "no column " << name);
    return size_t(at - header.begin());
  };
  std::vector<std::vector<std::string>> rows;
  while (std::getline(csv, line)) rows.push_back(split(line));
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) {
    CHECK(row[column("differing_chunks")] == "1");  // chunk 0 is dense under lightforcing
    CHECK(row[column("chunks")] == "2");
    CHECK(row[column("chunk_psnr")].rfind("identical;", 0) == 0);
  }
  const double psnr_a = std::stod(rows[0][column("differing_psnr")]);
  const double psnr_b = std::stod(rows[1][column("differing_psnr")]);
  CHECK(rows[0][column("rank")] == (psnr_a >= psnr_b ? "1" : "2"));
  CHECK(rows[1][column("rank")] == (psnr_a >= psnr_b ? "2" : "1"));
  // The differing-chunk PSNR of a 2-chunk run with chunk 0 identical is chunk 1's PSNR.
  CHECK(std::stod(rows[0][column("chunk_psnr")].substr(10)) == doctest::Approx(psnr_a).epsilon(1e-3));
}
