// lightforce encode-text and generate --prompt with a umT5 encoder, end to end through the binary: the small
// umt5-tiny size with random weights and the test SentencePiece model (tests/fixtures/umt5/).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using lf::test::run;
using lf::test::fresh_tmp_path;
using lf::test::RunResult;

const std::string kFixtures = std::string(LF_FIXTURES_DIR) + "/umt5/";
const std::string kTokenizer = kFixtures + "test-spiece.model";
// The cache is off unless a test turns it on: tests must not write to the user's cache.
const std::string kTiny = "encode-text --quiet --cache off --encoder umt5-tiny --t5-weights random:5 --tokenizer " +
                          kTokenizer + " ";


using lf::test::read_bytes;
std::vector<int64_t> fixture_ids(const std::string& name) {
  std::ifstream file(kFixtures + "tokenizer-ids.json");
  const nlohmann::json table = nlohmann::json::parse(file);
  for (const auto& entry : table["prompts"])
    if (entry["name"] == name) return entry["ids"].get<std::vector<int64_t>>();
  FAIL("no fixture prompt " << name);
  return {};
}

// A failed run: exit 1, one line on stderr naming `culprit`, nothing at `output`.
void check_refused(const RunResult& result, const std::string& culprit, const std::string& output) {
  CAPTURE(result.err);
  CHECK(result.exit_code == 1);
  CHECK(result.err.find(culprit) != std::string::npos);
  CHECK(std::count(result.err.begin(), result.err.end(), '\n') == 1);
  CHECK(!fs::exists(output));
}

}  // namespace

TEST_CASE("encode-text writes [tokens, dim] embeddings with the tokenizer's ids, deterministically") {
  const std::string a = fresh_tmp_path("umt5_a.safetensors"), b = fresh_tmp_path("umt5_b.safetensors");
  REQUIRE(run(kTiny + "--prompt 'a red circle moves right' -o " + a).exit_code == 0);
  REQUIRE(run(kTiny + "--prompt 'a red circle moves right' -o " + b).exit_code == 0);
  CHECK(read_bytes(a) == read_bytes(b));
  const auto file = lf::Checkpoint::open(a);
  const std::vector<int64_t> expected_ids = fixture_ids("plain");
  const lf::Tensor context = file->view("context");
  CHECK(context.shape() == lf::Shape{int64_t(expected_ids.size()), 64});
  const lf::Tensor ids = file->view("ids");
  const auto* raw = static_cast<const int64_t*>(ids.raw());
  CHECK(std::vector<int64_t>(raw, raw + ids.numel()) == expected_ids);
  // --ids with the same ids gives the same embeddings; --pad gives zero rows after them.
  std::string id_list;
  for (int64_t id : expected_ids) id_list += (id_list.empty() ? "" : ",") + std::to_string(id);
  const std::string from_ids = fresh_tmp_path("umt5_ids.safetensors"), padded = fresh_tmp_path("umt5_pad.safetensors");
  REQUIRE(run(kTiny + "--ids " + id_list + " -o " + from_ids).exit_code == 0);
  CHECK(std::memcmp(lf::Checkpoint::open(from_ids)->view("context").raw(), context.raw(), context.nbytes()) == 0);
  REQUIRE(run(kTiny + "--pad --prompt 'a red circle moves right' -o " + padded).exit_code == 0);
  const lf::Tensor padded_context = lf::Checkpoint::open(padded)->view("context");
  CHECK(padded_context.shape() == lf::Shape{512, 64});
  CHECK(std::memcmp(padded_context.raw(), context.raw(), context.nbytes()) == 0);
  const float* tail = padded_context.f32() + context.numel();
  CHECK(std::all_of(tail, tail + (padded_context.numel() - context.numel()), [](float v) { return v == 0.0f; }));
  // --repeat: the benchmark summary, and the file is the same.
  const std::string repeated = fresh_tmp_path("umt5_repeat.safetensors");
  const RunResult bench = run(kTiny + "--json --repeat 2 --prompt 'a red circle moves right' -o " + repeated);
  REQUIRE(bench.exit_code == 0);
  const auto summary = nlohmann::json::parse(bench.out);
  CHECK(summary["resident_encode_ms"]["runs"] == 2);
  CHECK(summary["resident_encode_ms"]["median"].get<double>() > 0);
  CHECK(summary["weights_bytes"].get<int64_t>() > 0);
  CHECK(read_bytes(repeated) == read_bytes(a));
}

TEST_CASE("encode-text --prompts writes one file per line; the cache returns the same bytes") {
  const std::string prompts = fresh_tmp_path("umt5_prompts.txt"), out = fresh_tmp_path("umt5_many"), cache = fresh_tmp_path("umt5_cache");
  std::ofstream(prompts) << "a red circle moves right\nun café crème\n";
  const std::string cached = "encode-text --quiet --json --cache " + cache +
                             " --encoder umt5-tiny --t5-weights random:5 --tokenizer " + kTokenizer + " ";
  const RunResult first = run(cached + "--prompts " + prompts + " -o " + out);
  REQUIRE(first.exit_code == 0);
  const auto summary = nlohmann::json::parse(first.out);
  REQUIRE(summary["outputs"].size() == 2);
  CHECK(summary["outputs"][0]["cached"] == false);
  const std::string first_bytes = read_bytes(out + "/prompt-0000.safetensors");
  CHECK(fs::exists(out + "/prompt-0001.safetensors"));
  const std::string single = fresh_tmp_path("umt5_cached.safetensors");
  const RunResult again = run(cached + "--prompt 'a red circle moves right' -o " + single);
  REQUIRE(again.exit_code == 0);
  CHECK(nlohmann::json::parse(again.out)["outputs"][0]["cached"] == true);
  CHECK(read_bytes(single) == first_bytes);
  // Other weights are another key.
  const RunResult other = run("encode-text --quiet --json --cache " + cache + " --encoder umt5-tiny --t5-weights "
                              "random:6 --tokenizer " + kTokenizer + " --prompt 'a red circle moves right' -o " +
                              fresh_tmp_path("umt5_other.safetensors"));
  REQUIRE(other.exit_code == 0);
  CHECK(nlohmann::json::parse(other.out)["outputs"][0]["cached"] == false);
}

TEST_CASE("encode-text bad input: one line naming the culprit, exit 1, nothing written") {
  const std::string out = fresh_tmp_path("umt5_bad.safetensors");
  check_refused(run(kTiny + "--prompt '   ' -o " + out), "empty prompt", out);
  check_refused(run(kTiny + "--ids 5,512,1 -o " + out), "token id 512 (position 1) is outside the vocab of 512", out);
  check_refused(run(kTiny + "--ids 5,x -o " + out), "'x' is not an integer", out);
  check_refused(run("encode-text --quiet --cache off --encoder umt5-tiny --t5-weights random --tokenizer " + kFixtures +
                    "missing.model --prompt hi -o " + out),
                "missing.model': no such file", out);
  check_refused(run("encode-text --quiet --cache off --encoder umt5-tiny --t5-weights random --tokenizer " + kFixtures +
                    "parity-small.yaml --prompt hi -o " + out),
                "not a SentencePiece model", out);
  // Weights of another size: the key and both shapes are named.
  const std::string wrong_size = fresh_tmp_path("umt5_wrong_size.safetensors");
  lf::write_safetensors(wrong_size, {{"token_embedding.weight", lf::test::random_tensor({100, 48}, 1)},
                                     {"blocks.0.attn.q.weight", lf::test::random_tensor({48, 48}, 2)}});
  check_refused(run("encode-text --quiet --cache off --encoder umt5-tiny --tokenizer " + kTokenizer + " --t5-weights " +
                    wrong_size + " --prompt hi -o " + out),
                "tensor 'token_embedding.weight' has shape [100, 48], expected [512, 64]", out);
  const std::string not_t5 = fresh_tmp_path("umt5_not_t5.safetensors");
  lf::write_safetensors(not_t5, {{"patch_embedding.weight", lf::test::random_tensor({8, 4}, 3)}});
  check_refused(run("encode-text --quiet --cache off --encoder umt5-tiny --tokenizer " + kTokenizer + " --t5-weights " +
                    not_t5 + " --prompt hi -o " + out),
                "not a umT5 encoder checkpoint (neither 'blocks.0.attn.q.weight' (Wan) nor", out);
  const std::string empty_dir = fresh_tmp_path("umt5_empty_model_dir");
  fs::create_directories(empty_dir);
  check_refused(run("encode-text --quiet --cache off --model-dir " + empty_dir + " --prompt hi -o " + out),
                "models_t5_umt5-xxl-enc-bf16.pth': no such file", out);
  check_refused(run("encode-text --quiet --cache off --prompt hi -o " + out), "pass --model-dir DIR", out);
  const std::string prompts = fresh_tmp_path("umt5_bad_prompts.txt");
  std::ofstream(prompts) << "fine\n\t\nfine too\n";
  const std::string dir = fresh_tmp_path("umt5_bad_dir");
  check_refused(run(kTiny + "--prompts " + prompts + " -o " + dir), "--prompts line 2: empty prompt", dir);
}

TEST_CASE("generate --prompt encodes with a umT5 encoder (tiny model, umt5-tiny)") {
  const std::string latents = fresh_tmp_path("umt5_generate_latents.safetensors");
  const RunResult result =
      run("generate -m tiny --quiet --no-video --set model.text_encoder=umt5-tiny --t5-weights random:5 --tokenizer " +
          kTokenizer + " --prompt 'a red circle moves right' --frames 3 --save-latents " + latents);
  CAPTURE(result.err);
  CHECK(result.exit_code == 0);
  CHECK(fs::exists(latents));
  const std::string missing = fresh_tmp_path("umt5_generate_missing.safetensors");
  check_refused(run("generate -m tiny --quiet --no-video --set model.text_encoder=umt5-tiny --t5-weights random "
                    "--prompt 'a red circle' --frames 3 --save-latents " + missing),
                "no umT5 tokenizer given: pass --model-dir DIR", missing);
}
