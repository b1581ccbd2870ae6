#pragma once
// Files compiled into the binary (configs/), so the default model runs with nothing on disk.
#include <string>

namespace lf {

struct EmbeddedFile {
  const char* path;  // relative to configs/, e.g. "models/wan2.1-t2v-1.3b.yaml"
  const char* text;
};
extern const EmbeddedFile kEmbeddedConfigs[];  // terminated by {nullptr, nullptr}
extern const char* const kVersion;
extern const char* const kGitCommit;

// The embedded text of configs/<path>, or nullptr.
const char* find_embedded_config(const std::string& path);

}  // namespace lf
