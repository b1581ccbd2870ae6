// What scripts rely on (docs/json.md, docs/cli.md): every JSON document carries an integer "schema_version" and,
// where a run made it, the prompt, weights, attention settings and seed; usage errors exit 2 on every subcommand.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using lf::test::fresh_tmp_path;
using lf::test::read_bytes;
using lf::test::run;
using lf::test::RunResult;

const std::string kPrompt = "a red circle moves right";
const std::string kTiny = "-m tiny --quiet --prompt '" + kPrompt + "' --frames 3 --seed 9 ";

// The document a command printed on stdout, after checking it exited 0.
nlohmann::json printed(const std::string& args) {
  const RunResult result = run(args);
  CAPTURE(args);
  CAPTURE(result.err);
  REQUIRE(result.exit_code == 0);
  try {
    return nlohmann::json::parse(result.out);
  } catch (const nlohmann::json::exception& error) {
    FAIL("stdout is not one JSON document: " << error.what() << "\n" << result.out);
  }
  return {};
}

void check_versioned(const nlohmann::json& document) {
  REQUIRE(document.is_object());
  REQUIRE(document.contains("schema_version"));
  CHECK(document["schema_version"].is_number_integer());
  CHECK(document["schema_version"] == 1);
}

// The provenance a run's document holds (run_provenance in cmd/machine_output.h).
void check_provenance(const nlohmann::json& document, const std::string& backend) {
  check_versioned(document);
  CHECK(document["prompt"] == kPrompt);
  CHECK(document["seed"] == 9);
  CHECK(document["weights"] == "random");  // the tiny model's weights
  REQUIRE(document.contains("attention_settings"));
  CHECK(document["attention_settings"]["backend"] == backend);
  CHECK(document["attention_settings"].contains("sparsity"));
}

}  // namespace

TEST_CASE("generate, compare-dense (and its sweep), profile-sparsity: schema_version and provenance") {
  const std::string latents = fresh_tmp_path("json_latents.safetensors");
  check_provenance(printed("generate " + kTiny + "--json --no-video --save-latents " + latents), "dense");
  const std::string compare = fresh_tmp_path("json_compare");
  const nlohmann::json report =
      printed("compare-dense " + kTiny + "--attention block-topk --no-videos --json --out-dir " + compare);
  check_provenance(report, "block-topk");
  CHECK(nlohmann::json::parse(read_bytes(compare + "/compare-dense.json")) == report);
  const nlohmann::json sweep = printed("compare-dense " + kTiny + "--attention block-topk --no-videos --json "
                                       "--sweep attention.sparsity=0,0.5 --out-dir " + compare);
  check_provenance(sweep, "block-topk");
  REQUIRE(sweep["points"].size() == 2);
  CHECK(sweep["points"][0]["settings"]["attention.sparsity"] == "0");
  CHECK(sweep["points"][1]["settings"]["attention.sparsity"] == "0.5");
  CHECK(sweep["points"][0].contains("psnr"));
  CHECK(sweep["axes"]["attention.sparsity"].size() == 2);
  const std::string profile = fresh_tmp_path("json_profile");
  const nlohmann::json sparsity = printed("profile-sparsity " + kTiny + "--attention block-topk --recall-row-stride 8 "
                                          "--json --out-dir " + profile);
  check_provenance(sparsity, "block-topk");
  check_versioned(nlohmann::json::parse(read_bytes(profile + "/sparsity.json")));
}

TEST_CASE("batch (summary, manifest lines, per-entry summary), merge-manifests, decode, inspect, plan-mask, bench") {
  const std::string prompts = fresh_tmp_path("json_prompts.txt"), out = fresh_tmp_path("json_batch");
  std::ofstream(prompts) << kPrompt << "\n";
  const nlohmann::json batch =
      printed("batch -m tiny --quiet --frames 3 --seed 9 --save-summary --json --prompts " + prompts + " --out-dir " + out);
  check_versioned(batch);
  CHECK(batch["seed"] == 9);
  CHECK(batch["weights"] == "random");
  CHECK(batch["attention_settings"]["backend"] == "dense");
  std::ifstream manifest(out + "/manifest.jsonl");
  int lines = 0;
  for (std::string line; std::getline(manifest, line); ++lines) check_versioned(nlohmann::json::parse(line));
  CHECK(lines == 1);
  const std::string summary = out + "/00000-a-red-circle-moves-right.json";
  REQUIRE(fs::exists(summary));
  check_provenance(nlohmann::json::parse(read_bytes(summary)), "dense");
  check_versioned(printed("merge-manifests --quiet --json -o " + fresh_tmp_path("json_merged.jsonl") + " " + out));

  const std::string latents = fresh_tmp_path("json_decode_latents.safetensors");
  REQUIRE(run("generate " + kTiny + "--no-video --save-latents " + latents).exit_code == 0);
  const nlohmann::json decode = printed("decode --quiet --json --decoder pixel --latents " + latents +
                                        " --save-video-tensor " + fresh_tmp_path("json_video.safetensors"));
  check_versioned(decode);
  CHECK(decode["latents"] == latents);
  check_versioned(printed("inspect --json " + std::string(LF_FIXTURES_DIR) + "/io/state_dict.pt"));
  check_versioned(printed("bench -m tiny --quiet --sizes 256x256 --frames 3 --json"));

  // plan-mask prints its summary (and writes it beside the mask): 2 frames of 64 tokens, 2 heads, head_dim 16.
  const std::string q = fresh_tmp_path("json_q.safetensors"), k = fresh_tmp_path("json_k.safetensors");
  lf::write_safetensors(q, {{"q", lf::test::random_tensor({64, 2, 16}, 1)}});
  lf::write_safetensors(k, {{"k", lf::test::random_tensor({128, 2, 16}, 2)}});
  const nlohmann::json mask = printed("plan-mask --tokens-per-frame 64 --chunk 1 --set pipeline.frames=6 --queries " +
                                      q + " --keys " + k + " --out " + fresh_tmp_path("json_mask.safetensors"));
  check_versioned(mask);
  CHECK(mask["queries"] == q);
  CHECK(mask["attention_settings"]["backend"] == mask["backend"]);

  const nlohmann::json encoded = printed("encode-text --quiet --json --cache off --encoder umt5-tiny --t5-weights "
                                         "random:5 --tokenizer " + std::string(LF_FIXTURES_DIR) +
                                         "/umt5/test-spiece.model --prompt '" + kPrompt + "' -o " +
                                         fresh_tmp_path("json_embeddings.safetensors"));
  check_versioned(encoded);
  CHECK(encoded["outputs"][0]["prompt"] == kPrompt);
#if LF_WITH_OPENCV
  const nlohmann::json checked = printed("check-prompts -m tiny --quiet --frames 6 --seeds 1 --json --prompt '" +
                                         kPrompt + "'");
  check_versioned(checked);
  CHECK(checked["runs"][0]["prompt"] == kPrompt);
  CHECK(checked["weights"] == "random");
#endif
}

TEST_CASE("usage errors exit 2 on every subcommand: unknown flag, missing required flag, value of the wrong type") {
  struct Case {
    std::string args, culprit;
  };
  const std::string latents = fresh_tmp_path("usage_latents.safetensors");
  const std::vector<Case> cases = {
      // unknown flags
      {"generate --frobnicate", "frobnicate"},
      {"batch --frobnicate", "frobnicate"},
      {"merge-manifests --frobnicate", "frobnicate"},
      {"decode --frobnicate", "frobnicate"},
      {"encode-text --frobnicate", "frobnicate"},
      {"inspect --frobnicate", "frobnicate"},
      {"profile-sparsity --frobnicate", "frobnicate"},
      {"compare-dense --frobnicate", "frobnicate"},
      {"plan-mask --frobnicate", "frobnicate"},
      {"check-prompts --frobnicate", "frobnicate"},
      {"bench --frobnicate", "frobnicate"},
      // a required flag (or input) missing
      {"generate -m tiny --quiet --frames 3 --no-video --save-latents " + latents, "no prompt"},
      {"generate -m tiny --quiet --prompt a --no-video", "would write nothing"},
      {"batch -m tiny --quiet --out-dir " + fresh_tmp_path("usage_batch"), "--prompts FILE"},
      {"merge-manifests", "no manifests given"},
      {"decode -o x.mp4", "pass --latents"},
      {"encode-text -o " + latents, "exactly one of"},
      {"inspect", "no checkpoint given"},
      {"profile-sparsity -m tiny --quiet --frames 3 --out-dir " + fresh_tmp_path("usage_profile"), "no prompt"},
      {"compare-dense -m tiny --quiet --prompt a --frames 3", "needs --attention"},
      {"plan-mask --keys k.safetensors --chunk 0 --tokens-per-frame 64 --out m.safetensors", "needs --queries"},
      // a value of the wrong type
      {"generate -m tiny --seed banana", "--seed: cannot parse 'banana'"},
      {"batch --frames many", "--frames: cannot parse 'many'"},
      {"decode --chunk-frames x", "--chunk-frames: cannot parse 'x'"},
      {"encode-text --repeat x", "--repeat: cannot parse 'x'"},
      {"profile-sparsity --recall-row-stride x", "--recall-row-stride: cannot parse 'x'"},
      {"compare-dense --recall-row-stride x", "--recall-row-stride: cannot parse 'x'"},
      {"plan-mask --chunk x", "--chunk: cannot parse 'x'"},
      {"check-prompts --seeds x", "--seeds: cannot parse 'x'"},
      {"bench --frames x", "--frames: cannot parse 'x'"},
      {"generate -m tiny --threads many", "--threads: cannot parse 'many'"},
      // stray arguments and flags that exclude each other
      {"generate -m tiny --quiet --prompt a stray", "'stray'"},
      {"inspect a.pt b.pt", "'b.pt'"},
      {"bench -m tiny stray", "'stray'"},
      {"compare-dense -m tiny --prompt a --attention block-topk --sweep attention.sparsity=0.5 --fail-below psnr=30",
       "not a --sweep"},
      {"compare-dense -m tiny --prompt a --save-reference r --reference r", "--save-reference only saves a run"},
  };
  for (const Case& usage : cases) {
    CAPTURE(usage.args);
    const RunResult result = run(usage.args);
    CAPTURE(result.err);
    CHECK(result.exit_code == 2);
    CHECK(result.err.find(usage.culprit) != std::string::npos);
    CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
  }
  // The other codes, for contrast: a run that fails on its input is 1, not 2.
  CHECK(run("inspect /nonexistent.pt").exit_code == 1);
  CHECK(run("--help").exit_code == 0);
}

TEST_CASE("--threads: every command takes it, and the bytes do not depend on it") {
  const std::string one = fresh_tmp_path("threads_1.safetensors"), three = fresh_tmp_path("threads_3.safetensors");
  REQUIRE(run("generate " + kTiny + "--threads 1 --no-video --save-latents " + one).exit_code == 0);
  REQUIRE(run("generate --threads=3 " + kTiny + "--no-video --save-latents " + three).exit_code == 0);
  CHECK(read_bytes(one) == read_bytes(three));
  CHECK(run("inspect --threads 2 --json " + std::string(LF_FIXTURES_DIR) + "/io/state_dict.pt").exit_code == 0);
  const RunResult zero = run("generate " + kTiny + "--threads 0 --no-video --save-latents " + one);
  CHECK(zero.exit_code == 1);
  CHECK(zero.err.find("--threads 0") != std::string::npos);
}
