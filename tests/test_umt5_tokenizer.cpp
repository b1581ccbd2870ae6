// umT5 tokenizer: Wan's cleaning and SentencePiece ids, pinned by tests/fixtures/umt5/tokenizer-ids.json (made by
// tools/make_umt5_tokenizer_fixture.py with python3-sentencepiece and Python's html.unescape; the Hugging Face
// check of the same table is bench/results/umt5-text/run.sh on the GPU machine).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/umt5_tokenizer.h"

namespace {

const std::string kFixtures = std::string(LF_FIXTURES_DIR) + "/umt5/";

nlohmann::json fixture() {
  std::ifstream file(kFixtures + "tokenizer-ids.json");
  REQUIRE(file);
  return nlohmann::json::parse(file);
}

}  // namespace

TEST_CASE("html_unescape follows Python's html.unescape") {
  const nlohmann::json cases = fixture()["html_unescape"];
  REQUIRE(cases.size() > 20);
  for (const auto& entry : cases) {
    const std::string input = entry[0], expected = entry[1];
    CAPTURE(input);
    CHECK(lf::html_unescape(input) == expected);
  }
}

TEST_CASE("prompt cleaning and token ids match the pinned table (plain, punctuation, digits, CJK, emoji, accents, "
          "entities, whitespace, over 512 tokens)") {
  const nlohmann::json table = fixture();
  const lf::Umt5Tokenizer tokenizer(kFixtures + "test-spiece.model", table["max_tokens"], 1);
  CHECK(tokenizer.vocab_size() == table["vocab"]);
  int checked = 0;
  for (const auto& entry : table["prompts"]) {
    const std::string name = entry["name"], prompt = entry["prompt"], cleaned = entry["cleaned"];
    CAPTURE(name);
    CHECK(lf::clean_prompt_text(prompt) == cleaned);
    const lf::Umt5Tokens tokens = tokenizer.tokenize(prompt);
    CHECK(tokens.ids == entry["ids"].get<std::vector<int64_t>>());
    CHECK(tokens.ids.back() == 1);  // EOS, kept under truncation
    if (name == "over_512_tokens") {
      CHECK(tokens.ids.size() == 512);
      CHECK(tokens.truncated());
      CHECK(tokens.untruncated_count > 512);
    } else {
      CHECK(!tokens.truncated());
    }
    ++checked;
  }
  CHECK(checked >= 10);
}

TEST_CASE("tokenizer bad input: missing file, not a SentencePiece model, empty prompt, invalid UTF-8") {
  CHECK_THROWS_WITH_AS(lf::Umt5Tokenizer(kFixtures + "no-such.model", 512, 1),
                       doctest::Contains("no-such.model': no such file"), lf::Error);
  CHECK_THROWS_WITH_AS(lf::Umt5Tokenizer(kFixtures + "parity-small.yaml", 512, 1),
                       doctest::Contains("not a SentencePiece model"), lf::Error);
  CHECK_THROWS_WITH_AS(lf::Umt5Tokenizer(kFixtures + "test-spiece.model", 512, 300),
                       doctest::Contains("id 300 is not a control piece"), lf::Error);
  const lf::Umt5Tokenizer tokenizer(kFixtures + "test-spiece.model", 512, 1);
  CHECK_THROWS_WITH_AS(tokenizer.tokenize(""), doctest::Contains("empty prompt"), lf::Error);
  CHECK_THROWS_WITH_AS(tokenizer.tokenize(" \t\u3000 "), doctest::Contains("empty prompt"), lf::Error);
  CHECK_THROWS_WITH_AS(tokenizer.tokenize("ab\xff"), doctest::Contains("not valid UTF-8 (byte 2)"), lf::Error);
  CHECK_THROWS_WITH_AS(tokenizer.tokenize("\xc0\xaf"), doctest::Contains("not valid UTF-8"), lf::Error);  // overlong
}
