// libFuzzer harness: the YAML run config with `--set` overrides. The input is the YAML text, then, after each
// NUL byte, one override "a.b=value". A config that parses is printed back (to_yaml). Only lf::Error may come
// out: a yaml-cpp exception escaping would reach the user as a message that names no key.
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t begin = 0;
  for (size_t nul; (nul = input.find('\0', begin)) != std::string::npos; begin = nul + 1)
    parts.push_back(input.substr(begin, nul - begin));
  parts.push_back(input.substr(begin));
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  try {
    const lf::RunConfig config = lf::parse_run_config(parts[0], "fuzz-input", overrides);
    (void)lf::to_yaml(config);
  } catch (const lf::Error&) {
  }
  return 0;
}
