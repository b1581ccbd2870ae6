#pragma once
// The "umt5-xxl" text encoder of the registry: tokenizer + umT5 encoder + an embedding cache. Nothing is read at
// construction (a run given --text-embeddings never needs the files); the first encode loads the weights (mmap)
// and, unless keep_loaded(true), drops them again after each prompt, so on the GPU the encoder is gone before the
// DiT's weights arrive and the peak memory of a generation does not grow.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/text_encoder.h"
#include "model/umt5_config.h"
#include "model/umt5_tokenizer.h"

namespace lf {

class Umt5Encoder;
class Checkpoint;

struct Umt5EncoderOptions {
  std::string weights;     // checkpoint path, or "random" / "random:SEED" (random weights of the config's size)
  std::string tokenizer;   // spiece.model
  Device device = Device::CPU;
  // Embedding cache directory: "" = the default ($LF_TEXT_CACHE, else $XDG_CACHE_HOME or ~/.cache
  // /lightforce/text-embeddings), "off" = none. Entries are keyed by the cleaned prompt and the encoder's identity
  // (config, weights file path + size + mtime, tokenizer file, device).
  std::string cache;
  int64_t text_len = 0;    // rows of encode()'s padded output (the DiT's text_len); 0 = config.max_tokens
};

class Umt5TextEncoder final : public TextEncoder {
 public:
  Umt5TextEncoder(Umt5Config config, Umt5EncoderOptions options);
  ~Umt5TextEncoder() override;

  // [text_len, dim], rows past the prompt's tokens zero.
  Tensor encode(const std::string& prompt) override;
  std::vector<std::string> notes(const std::string& prompt) const override;
  // [L, dim]: the prompt's tokens only (the --text-embeddings format); `cache_hit` says whether it was cached.
  Tensor encode_unpadded(const std::string& prompt, bool* cache_hit = nullptr);
  // [ids.size(), dim] for given ids (no cleaning, no EOS added, no cache).
  Tensor encode_ids(const std::vector<int64_t>& ids);
  Umt5Tokens tokenize(const std::string& prompt) const;
  // true: weights stay loaded between prompts (batches); false (default): dropped after each encode.
  void keep_loaded(bool keep) { keep_loaded_ = keep; }
  const Umt5Config& config() const { return config_; }
  std::string cache_directory() const;

 private:
  Umt5Encoder& encoder();
  const Umt5Tokenizer& tokenizer() const;
  std::string identity() const;

  Umt5Config config_;
  Umt5EncoderOptions options_;
  bool keep_loaded_ = false;
  mutable std::unique_ptr<Umt5Tokenizer> tokenizer_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Umt5Encoder> encoder_;
};

// Registry factories: the umT5-XXL of configs/text_encoders/umt5-xxl.yaml, and the small test size (umt5-tiny).
std::unique_ptr<TextEncoder> make_umt5_xxl_encoder(const TextEncoderSources& sources);
std::unique_ptr<TextEncoder> make_umt5_tiny_encoder(const TextEncoderSources& sources);

}  // namespace lf
