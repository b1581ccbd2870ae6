// Replays every input that once crashed a fuzz harness (tests/fixtures/fuzz-regressions/<harness>/) and the
// harnesses' seeds through the same harness code, in the normal (GCC, and in CI ASan + UBSan) build: a fixed
// parser bug that comes back fails here without a fuzzing run. docs/fuzzing.md.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

// Each harness defines the libFuzzer entry point; renamed here so all of them live in one executable.
#define LLVMFuzzerTestOneInput replay_pickle
#include "fuzz/fuzz_pickle.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_checkpoint
#include "fuzz/fuzz_checkpoint.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_safetensors
#include "fuzz/fuzz_safetensors.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_zip
#include "fuzz/fuzz_zip.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_config
#include "fuzz/fuzz_config.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_noise
#include "fuzz/fuzz_noise.cpp"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput replay_text_embeddings
#include "fuzz/fuzz_text_embeddings.cpp"
#undef LLVMFuzzerTestOneInput

namespace fs = std::filesystem;

namespace {

using Harness = std::function<int(const uint8_t*, size_t)>;

const std::map<std::string, Harness>& harnesses() {
  static const std::map<std::string, Harness> table = {
      {"fuzz_pickle", replay_pickle},     {"fuzz_checkpoint", replay_checkpoint},
      {"fuzz_safetensors", replay_safetensors}, {"fuzz_zip", replay_zip},
      {"fuzz_config", replay_config},     {"fuzz_noise", replay_noise},
      {"fuzz_text_embeddings", replay_text_embeddings}};
  return table;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), {});
}

// Runs every regular file under `folder` through `harness`; returns how many ran.
int replay_folder(const Harness& harness, const fs::path& folder) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    CAPTURE(entry.path().string());
    const std::string bytes = read_bytes(entry.path());
    // A harness returns 0 and lets only lf::Error out (caught inside); anything else fails this check.
    CHECK(harness(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == 0);
    ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("every crash the fuzzers found stays fixed") {
  const fs::path root = fs::path(LF_FIXTURES_DIR) / "fuzz-regressions";
  REQUIRE(fs::is_directory(root));
  int total = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    CAPTURE(name);
    // A folder named after no harness would be skipped silently: refuse it instead.
    REQUIRE(harnesses().count(name) == 1);
    total += replay_folder(harnesses().at(name), entry.path());
  }
  CHECK(total > 0);
}

TEST_CASE("the fuzz seeds and the I/O fixtures go through every harness without a finding") {
  const fs::path seeds = fs::path(LF_SOURCE_DIR) / "tests" / "fuzz" / "seeds";
  const fs::path io = fs::path(LF_FIXTURES_DIR) / "io";
  int total = 0;
  for (const auto& [name, harness] : harnesses()) {
    CAPTURE(name);
    total += replay_folder(harness, io);
    const fs::path own = seeds / name.substr(5);  // "fuzz_noise" -> seeds/noise
    if (fs::is_directory(own)) total += replay_folder(harness, own);
  }
  CHECK(total >= 7 * 21);  // 21 I/O fixtures per harness, at least
}
