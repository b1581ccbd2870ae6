#include "model/official_files.h"

#include <filesystem>

#include "core/error.h"

namespace lf {

OfficialModelFiles resolve_official_files(const OfficialFileFlags& flags) {
  std::error_code ignored;
  LF_CHECK(flags.model_dir.empty() || std::filesystem::is_directory(flags.model_dir, ignored),
           "--model-dir '{}': no such directory", flags.model_dir);
  const auto pick = [&](const std::string& flag, const char* official_name) {
    if (!flag.empty()) return flag;
    if (flags.model_dir.empty()) return std::string();
    return (std::filesystem::path(flags.model_dir) / official_name).string();
  };
  return {pick(flags.t5_weights, kOfficialT5Weights), pick(flags.tokenizer, kOfficialTokenizer),
          pick(flags.vae, kOfficialVae)};
}

void require_model_file(const std::string& path, const char* what, const char* official_name, const char* flag) {
  LF_CHECK(!path.empty(), "no {} given: pass --model-dir DIR (the official folder, holding {}) or {} FILE", what,
           official_name, flag);
  std::error_code ignored;
  LF_CHECK(std::filesystem::is_regular_file(path, ignored), "{} '{}': no such file (set it with --model-dir DIR or "
           "{} FILE)", what, path, flag);
}

}  // namespace lf
