#pragma once
// The size of a umT5 encoder (configs/text_encoders/*.yaml): the shipped umT5-XXL and small test encoders share
// one code path, so every size is a config, never a constant in the code.
#include <cstdint>
#include <string>

namespace lf {

struct Umt5Config {
  std::string name = "umt5";
  std::string source;          // where the config came from, for messages
  int64_t vocab = 0;           // rows of the token embedding
  int64_t dim = 0;             // model width (the text_dim the DiT sees)
  int64_t heads = 0;
  int64_t head_dim = 0;        // dim_attn = heads * head_dim
  int64_t ffn_dim = 0;
  int64_t layers = 0;
  int64_t buckets = 32;        // relative-position buckets, bidirectional (half per direction)
  int64_t max_distance = 128;  // distances beyond it share the last bucket
  bool shared_position_bias = false;  // true: one table for all blocks (T5 v1); false: one per block (umT5)
  double eps = 1e-6;
  int64_t max_tokens = 512;    // the tokenizer's sequence length (EOS included)
  int64_t pad_id = 0;
  int64_t eos_id = 1;

  int64_t attention_dim() const { return heads * head_dim; }
};

// A built-in config (configs/text_encoders/<name>.yaml, embedded in the binary) or a YAML file; every key must be
// known and every size positive; errors name the key and the file.
Umt5Config load_umt5_config(const std::string& name_or_path);
Umt5Config parse_umt5_config(const std::string& yaml_text, const std::string& source);

}  // namespace lf
