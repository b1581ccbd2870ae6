#include "io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace lf {

namespace fs = std::filesystem;

void check_output_writable(const std::string& path, const char* what) {
  LF_CHECK(!path.empty(), "{}: empty output path", what);
  const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  std::error_code error;
  LF_CHECK(fs::is_directory(parent, error), "{} '{}': directory '{}' does not exist", what, path, parent.string());
  LF_CHECK(::access(parent.c_str(), W_OK) == 0, "{} '{}': directory '{}' is not writable", what, path,
           parent.string());
  LF_CHECK(!fs::is_directory(path, error), "{} '{}' is a directory", what, path);
}

AtomicFile::AtomicFile(std::string final_path) : final_path_(std::move(final_path)) {
  check_output_writable(final_path_, "output");
  temp_path_ = final_path_ + ".tmp-" + std::to_string(::getpid());
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::commit() {
  LF_CHECK(std::rename(temp_path_.c_str(), final_path_.c_str()) == 0, "cannot move '{}' to '{}': {}", temp_path_,
           final_path_, std::strerror(errno));
  committed_ = true;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  AtomicFile file(path);
  std::FILE* handle = std::fopen(file.temp_path().c_str(), "wb");
  LF_CHECK(handle != nullptr, "cannot create '{}': {}", file.temp_path(), std::strerror(errno));
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), handle);
  const bool closed = std::fclose(handle) == 0;
  LF_CHECK(written == bytes.size() && closed, "cannot write '{}': {}", path, std::strerror(errno));
  file.commit();
}

}  // namespace lf
