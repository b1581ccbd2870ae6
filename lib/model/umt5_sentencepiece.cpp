#include "model/umt5_sentencepiece.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace lf {

namespace {

constexpr const char* kShimName = "liblf_sentencepiece_shim.so";

struct ShimFunctions {
  void* (*open)(const char*, char*, size_t);
  void (*close)(void*);
  int (*piece_size)(void*);
  int (*is_control)(void*, int);
  int (*is_unknown)(void*, int);
  long (*encode)(void*, const char*, size_t, int*, size_t, char*, size_t);
};

template <typename T>
void bind(void* library, const char* name, T* out) {
  void* symbol = dlsym(library, name);
  LF_CHECK(symbol != nullptr, "SentencePiece shim '{}': no symbol {}", sentencepiece_shim_path(), name);
  *out = reinterpret_cast<T>(symbol);
}

const ShimFunctions& shim() {
  static const ShimFunctions functions = [] {
    const std::string path = sentencepiece_shim_path();
    // A link-map namespace of its own: SentencePiece's bundled protobuf must neither replace nor be replaced by the
    // libprotobuf that OpenCV loads (a version check aborts the process otherwise). dlmopen rather than
    // RTLD_DEEPBIND, which the sanitizer runtimes refuse (the CI's ASan build dies at the dlopen).
    void* library = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    LF_CHECK(library != nullptr, "cannot load the SentencePiece shim '{}' ({}); set LF_SENTENCEPIECE_SHIM to its path",
             path, dlerror());
    ShimFunctions bound{};
    bind(library, "lf_spm_open", &bound.open);
    bind(library, "lf_spm_close", &bound.close);
    bind(library, "lf_spm_piece_size", &bound.piece_size);
    bind(library, "lf_spm_is_control", &bound.is_control);
    bind(library, "lf_spm_is_unknown", &bound.is_unknown);
    bind(library, "lf_spm_encode", &bound.encode);
    return bound;
  }();
  return functions;
}

}  // namespace

std::string sentencepiece_shim_path() {
  if (const char* set = std::getenv("LF_SENTENCEPIECE_SHIM"); set && *set) return set;
  std::error_code error;
  const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    const std::filesystem::path beside = executable.parent_path() / kShimName;
    if (std::filesystem::exists(beside, error)) return beside.string();
  }
  return LF_SENTENCEPIECE_SHIM_BUILD_PATH;
}

SentencePieceModel::SentencePieceModel(const std::string& path) : path_(path) {
  char error[512] = {};
  handle_ = shim().open(path.c_str(), error, sizeof(error));
  LF_CHECK(handle_ != nullptr, "tokenizer '{}': not a SentencePiece model ({})", path, error);
}

SentencePieceModel::~SentencePieceModel() {
  if (handle_) shim().close(handle_);
}

std::vector<int> SentencePieceModel::encode(const std::string& text) const {
  std::vector<int> ids(text.size() + 16);  // SentencePiece emits at most a few pieces per byte: retried if not
  char error[512] = {};
  for (;;) {
    const long count = shim().encode(handle_, text.data(), text.size(), ids.data(), ids.size(), error, sizeof(error));
    LF_CHECK(count >= 0, "tokenizer '{}': cannot encode the prompt ({})", path_, error);
    if (size_t(count) <= ids.size()) {
      ids.resize(size_t(count));
      return ids;
    }
    ids.resize(size_t(count));
  }
}

int SentencePieceModel::piece_size() const { return shim().piece_size(handle_); }
bool SentencePieceModel::is_control(int id) const { return shim().is_control(handle_, id) != 0; }
bool SentencePieceModel::is_unknown(int id) const { return shim().is_unknown(handle_, id) != 0; }

}  // namespace lf
