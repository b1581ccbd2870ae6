// libFuzzer harness: the noise-file reader (--noise) for a 6-frame, 2-chunk, 3-step run, asking for every draw
// a run would. Only lf::Error may come out.
#include <cstdint>

#include "core/error.h"
#include "fuzz_util.h"
#include "pipeline/noise_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static lf::fuzz::MemoryPath file;
  const lf::NoiseShape shape{6, 3, 3, 4, 4};  // frames, chunk_frames, channels, height, width
  try {
    const auto noise = lf::make_file_noise(file.write(data, size), shape);
    for (int64_t chunk = 0; chunk < 2; ++chunk) {
      lf::fuzz::touch(noise->initial(chunk));
      for (int64_t step = 1; step < 3; ++step) lf::fuzz::touch(noise->renoise(chunk, step));
    }
  } catch (const lf::Error&) {
  }
  return 0;
}
