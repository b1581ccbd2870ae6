#include "core/embedded.h"

namespace lf {

const char* find_embedded_config(const std::string& path) {
  for (const EmbeddedFile* file = kEmbeddedConfigs; file->path; ++file)
    if (path == file->path) return file->text;
  return nullptr;
}

}  // namespace lf
