#pragma once
// The testbed's text encoder: one learned row per word of a small vocabulary (plus optional position rows). Its
// tensors are stored in the DiT's checkpoint under "text_encoder." with the vocabulary in the metadata.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/text_encoder.h"

namespace lf {

// Lowercase words (letters and digits) of a prompt, in order.
std::vector<std::string> tokenize_words(const std::string& prompt);

struct WordTable {
  Tensor table;      // [vocabulary + 1, text_dim]; row 0 is <unk>
  Tensor positions;  // [text_len, text_dim] or undefined
  std::vector<std::string> vocabulary;
};

// From the DiT checkpoint (tensors under `prefix` + "text_encoder."), shapes checked against `config`.
WordTable load_word_table(const ModelConfig& config, const Checkpoint& checkpoint, const std::string& prefix);
// Deterministic random table for a randomly initialised model (config.vocabulary, config.init_seed).
WordTable random_word_table(const ModelConfig& config);
// The tensors and metadata save_weights writes beside the DiT's.
void append_word_table(const WordTable& table, DType dtype, std::vector<std::pair<std::string, Tensor>>& tensors,
                       std::map<std::string, std::string>& metadata);

// Row i = table[id(word_i)] (+ positions[i]); unknown words map to row 0 (<unk>); zero rows after the prompt.
class WordTableEncoder final : public TextEncoder {
 public:
  WordTableEncoder(WordTable table, int64_t text_len);
  Tensor encode(const std::string& prompt) override;
  std::vector<std::string> notes(const std::string& prompt) const override;
  std::vector<std::string> unknown_words(const std::string& prompt) const;

 private:
  int64_t word_id(const std::string& word) const;
  WordTable table_;
  int64_t text_len_;
};

std::unique_ptr<TextEncoder> make_word_table_encoder(const TextEncoderSources& sources);

}  // namespace lf
