#pragma once
// Text conditioning: the DiT takes [text_len, text_dim] embeddings (umT5-XXL output for Wan, zero-padded).
// Sources: a precomputed embeddings file, or the word-table encoder that testbed models carry in their weights.
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

// Reads [L, text_dim] (L <= text_len) from a safetensors file: its only tensor, or the one named "context";
// pads with zero rows to text_len (spec 4: rows beyond the prompt are zero before the text MLP).
Tensor load_text_embeddings(const std::string& path, const ModelConfig& config);

// Lowercase words (letters and digits) of a prompt, in order.
std::vector<std::string> tokenize_words(const std::string& prompt);

// Row i = table[id(word_i)] (+ positions[i]); unknown words map to row 0 (<unk>); zero rows after the prompt.
class WordTableEncoder {
 public:
  WordTableEncoder(Tensor table, Tensor positions, std::vector<std::string> vocabulary, int64_t text_len);
  Tensor encode(const std::string& prompt) const;
  std::vector<std::string> unknown_words(const std::string& prompt) const;

 private:
  int64_t word_id(const std::string& word) const;
  Tensor table_, positions_;
  std::vector<std::string> vocabulary_;
  int64_t text_len_;
};

}  // namespace lf
