// libFuzzer harness: the safetensors header parser (run with safetensors.dict) and a view of every tensor with
// every byte read. Only lf::Error may come out.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto checkpoint = lf::SafetensorsCheckpoint::open(lf::fuzz::memory_file(data, size));
    for (const lf::TensorEntry& entry : checkpoint->entries()) lf::fuzz::touch(checkpoint->view(entry.name));
    (void)checkpoint->metadata();
  } catch (const lf::Error&) {
  }
  return 0;
}
