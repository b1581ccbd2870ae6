// libFuzzer harness: the text-embedding reader (--text-embeddings) for a model with text_dim 8, text_len 16.
// Only lf::Error may come out.
#include <cstdint>

#include "config/config.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "model/text_encoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lf::fuzz::MemoryPath file;
  lf::ModelConfig model;
  model.text_dim = 8;
  model.text_len = 16;
  try {
    lf::fuzz::touch(lf::load_text_embeddings(file.write(data, size), model));
  } catch (const lf::Error&) {
  }
  return 0;
}
