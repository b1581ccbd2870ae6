#include "model/text_encoder.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/error.h"
#include "io/checkpoint.h"

namespace lf {

Tensor load_text_embeddings(const std::string& path, const ModelConfig& config) {
  const auto file = Checkpoint::open(path);
  std::string name;
  if (file->contains("context")) {
    name = "context";
  } else {
    LF_CHECK(file->entries().size() == 1, "text embeddings '{}': expected one tensor or one named 'context', found {}",
             path, file->entries().size());
    name = file->entries()[0].name;
  }
  const Tensor stored = file->view(name);
  Tensor embeddings = stored.rank() == 3 && stored.dim(0) == 1 ? stored.reshape({stored.dim(1), stored.dim(2)})
                                                                : stored;
  LF_CHECK(embeddings.rank() == 2 && embeddings.dim(1) == config.text_dim && embeddings.dim(0) <= config.text_len &&
               embeddings.dim(0) > 0,
           "text embeddings '{}': tensor '{}' has shape {}, expected [L <= {}, {}]", path, name,
           shape_str(stored.shape()), config.text_len, config.text_dim);
  LF_CHECK(dtype_is_float(embeddings.dtype()), "text embeddings '{}': dtype {} is not a float type", path,
           dtype_name(embeddings.dtype()));
  Tensor padded = Tensor::zeros({config.text_len, config.text_dim});
  const Tensor values = embeddings.to(DType::F32);
  std::memcpy(padded.raw(), values.raw(), values.nbytes());
  return padded;
}

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

WordTableEncoder::WordTableEncoder(Tensor table, Tensor positions, std::vector<std::string> vocabulary,
                                   int64_t text_len)
    : table_(std::move(table)), positions_(std::move(positions)), vocabulary_(std::move(vocabulary)),
      text_len_(text_len) {
  LF_CHECK(table_.rank() == 2 && table_.dim(0) == int64_t(vocabulary_.size()) + 1,
           "word table {} does not match a vocabulary of {} words (+ <unk>)", shape_str(table_.shape()),
           vocabulary_.size());
}

int64_t WordTableEncoder::word_id(const std::string& word) const {
  const auto found = std::find(vocabulary_.begin(), vocabulary_.end(), word);
  return found == vocabulary_.end() ? 0 : 1 + (found - vocabulary_.begin());
}

std::vector<std::string> WordTableEncoder::unknown_words(const std::string& prompt) const {
  std::vector<std::string> unknown;
  for (const auto& word : tokenize_words(prompt))
    if (word_id(word) == 0) unknown.push_back(word);
  return unknown;
}

Tensor WordTableEncoder::encode(const std::string& prompt) const {
  const int64_t width = table_.dim(1);
  Tensor out = Tensor::zeros({text_len_, width});
  const std::vector<std::string> words = tokenize_words(prompt);
  const bool has_positions = positions_.defined();
  for (int64_t i = 0; i < std::min<int64_t>(text_len_, int64_t(words.size())); ++i) {
    const float* row = table_.f32() + word_id(words[size_t(i)]) * width;
    for (int64_t d = 0; d < width; ++d)
      out.f32()[i * width + d] = row[d] + (has_positions ? positions_.f32()[i * width + d] : 0.0f);
  }
  return out;
}

}  // namespace lf
