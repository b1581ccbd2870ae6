// libFuzzer harness: the zip reader (central directory, ZIP64 records, local headers) and the bytes of every
// entry. Only lf::Error may come out.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/zip_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lf::ZipReader zip(lf::fuzz::memory_file(data, size));
    for (const lf::ZipEntry& entry : zip.entries()) {
      if (zip.find(entry.name) == nullptr) __builtin_trap();  // every listed entry must be found by its name
      try {
        lf::fuzz::touch(zip.stored_data_checked(entry));
      } catch (const lf::Error&) {  // compressed or out of bounds: the other entries are still read
      }
    }
  } catch (const lf::Error&) {
  }
  return 0;
}
