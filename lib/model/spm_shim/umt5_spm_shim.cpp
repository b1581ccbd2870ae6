// A C-ABI wrapper around SentencePiece, built as its own shared library and loaded with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND) by lib/model/umt5_sentencepiece.cpp. Why: Debian's libsentencepiece exports the protobuf-lite it
// bundles; linked into a binary that also loads libprotobuf (OpenCV's dnn module does), one library's protobuf
// calls bind to the other's copy and the process crashes during start-up. Loaded locally and deep-bound, the
// bundled copy serves SentencePiece alone, and only when a tokenizer is used.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace {

void copy_error(const std::string& message, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  const size_t length = std::min(message.size(), error_size - 1);
  std::memcpy(error, message.data(), length);
  error[length] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) void* lf_spm_open(const char* path, char* error, size_t error_size) {
  auto* processor = new sentencepiece::SentencePieceProcessor();
  const auto status = processor->Load(path);
  if (!status.ok()) {
    copy_error(status.ToString(), error, error_size);
    delete processor;
    return nullptr;
  }
  return processor;
}

__attribute__((visibility("default"))) void lf_spm_close(void* handle) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(handle);
}

__attribute__((visibility("default"))) int lf_spm_piece_size(void* handle) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->GetPieceSize();
}

__attribute__((visibility("default"))) int lf_spm_is_control(void* handle, int id) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IsControl(id) ? 1 : 0;
}

__attribute__((visibility("default"))) int lf_spm_is_unknown(void* handle, int id) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(handle)->IsUnknown(id) ? 1 : 0;
}

// Writes up to `capacity` ids and returns how many the text has (call again with a larger buffer when more), or -1
// with the error text.
__attribute__((visibility("default"))) long lf_spm_encode(void* handle, const char* text, size_t length, int* ids,
                                                          size_t capacity, char* error, size_t error_size) {
  std::vector<int> pieces;
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(handle)->Encode(std::string(text, length), &pieces);
  if (!status.ok()) {
    copy_error(status.ToString(), error, error_size);
    return -1;
  }
  std::memcpy(ids, pieces.data(), std::min(pieces.size(), capacity) * sizeof(int));
  return long(pieces.size());
}

}  // extern "C"
