#pragma once
// Outputs are written to "<path>.tmp-<pid>" and renamed into place only when complete, so a failed or
// interrupted run never leaves a partial file at the final path.
#include <string>

namespace lf {

class AtomicFile {
 public:
  // Checks that the directory of `final_path` exists and is writable before any work is done.
  explicit AtomicFile(std::string final_path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  void commit();  // rename(temp, final); throws lf::Error naming the path on failure

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Fails with a one-line error naming `path` if a file cannot be created there (missing or read-only directory).
void check_output_writable(const std::string& path, const char* what);

// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lf
