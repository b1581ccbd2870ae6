#include "model/word_table_encoder.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "model/wan_weights.h"

namespace lf {

std::vector<std::string> tokenize_words(const std::string& prompt) {
  std::vector<std::string> words;
  std::string current;
  for (char ch : prompt + " ") {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      current += char(std::tolower(static_cast<unsigned char>(ch)));
    } else if (!current.empty()) {
      words.push_back(current);
      current.clear();
    }
  }
  return words;
}

WordTable load_word_table(const ModelConfig& config, const Checkpoint& checkpoint, const std::string& prefix) {
  WordTable loaded;
  const std::string table_name = prefix + "text_encoder.word_table";
  LF_CHECK(checkpoint.contains(table_name), "weights '{}': word-table encoder needs tensor '{}'", checkpoint.path(),
           table_name);
  loaded.table = checkpoint.view(table_name).to(DType::F32);
  LF_CHECK(loaded.table.rank() == 2 && loaded.table.dim(1) == config.text_dim,
           "weights '{}': '{}' has shape {}, expected [vocab, {}]", checkpoint.path(), table_name,
           shape_str(loaded.table.shape()), config.text_dim);
  const std::string positions_name = prefix + "text_encoder.position_table";
  if (checkpoint.contains(positions_name)) {
    loaded.positions = checkpoint.view(positions_name).to(DType::F32);
    check_shape(loaded.positions, {config.text_len, config.text_dim}, positions_name.c_str());
  }
  const auto metadata = checkpoint.metadata();
  auto vocabulary = metadata.find("vocabulary");
  LF_CHECK(vocabulary != metadata.end(), "weights '{}': word-table encoder needs metadata 'vocabulary'",
           checkpoint.path());
  std::stringstream words(vocabulary->second);
  for (std::string word; words >> word;) loaded.vocabulary.push_back(word);
  LF_CHECK(int64_t(loaded.vocabulary.size()) + 1 == loaded.table.dim(0),
           "weights '{}': vocabulary has {} words but the word table has {} rows (words + <unk>)", checkpoint.path(),
           loaded.vocabulary.size(), loaded.table.dim(0));
  return loaded;
}

WordTable random_word_table(const ModelConfig& config) {
  LF_CHECK(!config.vocabulary.empty(), "model.vocabulary is empty: a random word-table encoder needs words");
  WordTable random;
  random.vocabulary = config.vocabulary;
  random.table = Tensor::empty({int64_t(config.vocabulary.size()) + 1, config.text_dim});
  // Keyed after the DiT's own parameters (random_weights draws stream i for parameter i), so the table is the one
  // earlier versions drew when it lived among the DiT's weights.
  WanWeights scratch;
  fill_normal(random.table, {config.init_seed, uint32_t(parameter_slots(config, scratch).size()), 0xC0FFEEu});
  return random;
}

void append_word_table(const WordTable& table, DType dtype, std::vector<std::pair<std::string, Tensor>>& tensors,
                       std::map<std::string, std::string>& metadata) {
  tensors.emplace_back("text_encoder.word_table", table.table.to(dtype));
  if (table.positions.defined()) tensors.emplace_back("text_encoder.position_table", table.positions.to(dtype));
  metadata["vocabulary"] = fmt::format("{}", fmt::join(table.vocabulary, " "));
}

WordTableEncoder::WordTableEncoder(WordTable table, int64_t text_len) : table_(std::move(table)), text_len_(text_len) {
  LF_CHECK(table_.table.rank() == 2 && table_.table.dim(0) == int64_t(table_.vocabulary.size()) + 1,
           "word table {} does not match a vocabulary of {} words (+ <unk>)", shape_str(table_.table.shape()),
           table_.vocabulary.size());
}

int64_t WordTableEncoder::word_id(const std::string& word) const {
  const auto found = std::find(table_.vocabulary.begin(), table_.vocabulary.end(), word);
  return found == table_.vocabulary.end() ? 0 : 1 + (found - table_.vocabulary.begin());
}

std::vector<std::string> WordTableEncoder::unknown_words(const std::string& prompt) const {
  std::vector<std::string> unknown;
  for (const auto& word : tokenize_words(prompt))
    if (word_id(word) == 0) unknown.push_back(word);
  return unknown;
}

std::vector<std::string> WordTableEncoder::notes(const std::string& prompt) const {
  const auto unknown = unknown_words(prompt);
  if (unknown.empty()) return {};
  return {fmt::format("{} word(s) not in the model's vocabulary map to <unk>: {}", unknown.size(),
                      fmt::join(unknown, ", "))};
}

Tensor WordTableEncoder::encode(const std::string& prompt) {
  const int64_t width = table_.table.dim(1);
  Tensor out = Tensor::zeros({text_len_, width});
  const std::vector<std::string> words = tokenize_words(prompt);
  const bool has_positions = table_.positions.defined();
  for (int64_t i = 0; i < std::min<int64_t>(text_len_, int64_t(words.size())); ++i) {
    const float* row = table_.table.f32() + word_id(words[size_t(i)]) * width;
    for (int64_t d = 0; d < width; ++d)
      out.f32()[i * width + d] = row[d] + (has_positions ? table_.positions.f32()[i * width + d] : 0.0f);
  }
  return out;
}

std::unique_ptr<TextEncoder> make_word_table_encoder(const TextEncoderSources& sources) {
  const ModelConfig& config = *sources.model;
  WordTable table = sources.dit_checkpoint ? load_word_table(config, *sources.dit_checkpoint, sources.dit_prefix)
                                           : random_word_table(config);
  return std::make_unique<WordTableEncoder>(std::move(table), config.text_len);
}

}  // namespace lf
