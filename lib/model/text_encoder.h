#pragma once
// Text conditioning: the DiT takes a context [text_len, text_dim] (umT5-XXL output for Wan, rows past the prompt
// zero). Encoders sit behind one registry: model.text_encoder names an entry, and the factory, config validation,
// --help and docs read the same table. "embeddings" has no encoder: the context comes from --text-embeddings.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/tensor.h"

namespace lf {

class Checkpoint;

class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  // prompt -> context [text_len, text_dim], f32 on the CPU, zero rows after the prompt's tokens.
  virtual Tensor encode(const std::string& prompt) = 0;
  // Things a user should hear about this prompt (words mapped to <unk>, truncation), one line each.
  virtual std::vector<std::string> notes(const std::string&) const { return {}; }
};

// Where an encoder finds its weights and tokenizer. Fields an encoder does not need stay empty.
struct TextEncoderSources {
  const ModelConfig* model = nullptr;
  const Checkpoint* dit_checkpoint = nullptr;  // the DiT's file (the testbed's word table lives there); null: random
  std::string dit_prefix;                      // the prefix in front of the DiT's tensors in that file
  std::string weights;                         // the encoder's own weights file (umT5)
  std::string tokenizer;                       // the tokenizer model (umT5: spiece.model)
  Device device = Device::CPU;
};

struct TextEncoderEntry {
  std::string name;         // the value of model.text_encoder
  std::string description;  // one line, for --help and docs
  // null: no built-in encoder (the context must come from --text-embeddings).
  std::function<std::unique_ptr<TextEncoder>(const TextEncoderSources&)> make;
};

const std::vector<TextEncoderEntry>& text_encoder_registry();
// The entry named `name`; the error lists the known names.
const TextEncoderEntry& text_encoder_entry(const std::string& name);
// "embeddings, word-table, ..." for messages and help.
std::string text_encoder_names();

// Reads [L, text_dim] (L <= text_len) from a safetensors file: its only tensor, or the one named "context";
// pads with zero rows to text_len (spec 4: rows beyond the prompt are zero before the text MLP).
Tensor load_text_embeddings(const std::string& path, const ModelConfig& config);

}  // namespace lf
