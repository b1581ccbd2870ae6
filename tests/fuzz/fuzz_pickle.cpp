// libFuzzer harness: the restricted unpickler on arbitrary bytes. Only lf::Error may come out; any other
// exception, crash, leak or sanitizer report is a finding.
#include <cstdint>

#include "core/error.h"
#include "io/pickle.h"

namespace {

// Visits the value graph the way the checkpoint flattener does (bounded depth and visit count: a hostile pickle
// may share and cycle), reading every field.
void walk(const lf::PickleValue& value, int depth, int64_t& budget) {
  if (--budget < 0 || depth > lf::kPickleMaxWalkDepth) return;
  size_t sum = value.text.size();
  if (value.tensor) sum += value.tensor->shape.size() + value.tensor->storage.key.size();
  if (value.storage) sum += value.storage->key.size();
  __asm__ volatile("" : : "r"(sum));  // keeps the reads
  for (const lf::PickleValue* item : value.items) walk(*item, depth + 1, budget);
  for (const auto& [key, item] : value.dict) {
    walk(*key, depth + 1, budget);
    walk(*item, depth + 1, budget);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lf::PickleDocument document = lf::unpickle_restricted({data, size}, "fuzz-input");
    int64_t budget = 100000;
    walk(document.root(), 0, budget);
  } catch (const lf::Error&) {
  }
  return 0;
}
