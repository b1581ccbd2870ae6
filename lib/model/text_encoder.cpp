#include "model/text_encoder.h"

#include <cstring>

#include "core/error.h"
#include "core/registry.h"
#include "io/checkpoint.h"
#include "model/umt5_text_encoder.h"
#include "model/word_table_encoder.h"

namespace lf {

const std::vector<TextEncoderEntry>& text_encoder_registry() {
  static const std::vector<TextEncoderEntry> registry = {
      {"embeddings", "no built-in encoder: the context comes from --text-embeddings (safetensors [L, text_dim])",
       nullptr},
      {"word-table", "one learned row per word (the testbed models); tensors in the DiT checkpoint",
       make_word_table_encoder},
      {"umt5-xxl", "umT5-XXL (Wan2.1's text encoder): --model-dir or --t5-weights and --tokenizer",
       make_umt5_xxl_encoder},
      {"umt5-tiny", "a small random-weight umT5 of the same design (tests; --t5-weights random)",
       make_umt5_tiny_encoder},
  };
  return registry;
}

std::string text_encoder_names() { return registry_names(text_encoder_registry()); }

const TextEncoderEntry& text_encoder_entry(const std::string& name) {
  return registry_entry(text_encoder_registry(), name, "model.text_encoder", "text encoder");
}

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

}  // namespace lf
