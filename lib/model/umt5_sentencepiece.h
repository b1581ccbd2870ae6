#pragma once
// SentencePiece through lib/model/spm_shim (a shared library loaded on first use, see the shim for why): a model
// file opened, pieces encoded. Errors name the file.
#include <memory>
#include <string>
#include <vector>

namespace lf {

class SentencePieceModel {
 public:
  explicit SentencePieceModel(const std::string& path);  // fails naming the file when it is not a model
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  std::vector<int> encode(const std::string& text) const;
  int piece_size() const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;

 private:
  void* handle_ = nullptr;
  std::string path_;
};

// Where the shim is looked for: $LF_SENTENCEPIECE_SHIM, beside the running executable, then the build tree.
std::string sentencepiece_shim_path();

}  // namespace lf
