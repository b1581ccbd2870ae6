// libFuzzer harness: a checkpoint opened from memory by content (PyTorch zip, legacy or bare pickle,
// safetensors), then a view of every entry with every byte read. Only lf::Error may come out.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto checkpoint = lf::Checkpoint::open(lf::fuzz::memory_file(data, size));
    for (const lf::TensorEntry& entry : checkpoint->entries()) {
      try {
        lf::fuzz::touch(checkpoint->view(entry.name));
      } catch (const lf::Error&) {  // e.g. a non-contiguous tensor: listed, not viewable
      }
    }
    (void)checkpoint->metadata();
  } catch (const lf::Error&) {
  }
  return 0;
}
