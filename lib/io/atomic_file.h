#pragma once
// Outputs are written to "<path>.tmp-<pid>" and renamed into place only when complete, so a failed or
// interrupted run never leaves a partial file at the final path. SIGINT / SIGTERM remove the temporary files
// of every AtomicFile still open before the process dies (only SIGKILL can leave one behind).
//
// A final path that already exists as a character device (/dev/null, /dev/full) is written in place: renaming
// over it would replace the device node itself (as root: the system's /dev/null). Other special files (FIFOs,
// sockets, block devices) are refused: a video or safetensors writer cannot stream into them.
#include <string>
#include <utility>
#include <vector>

namespace lf {

class AtomicFile {
 public:
  // Checks that the directory of `final_path` exists and is writable before any work is done.
  explicit AtomicFile(std::string final_path);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Where to write: the temporary file, or the final path itself for a character device.
  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  bool in_place() const { return in_place_; }
  void commit();  // rename(temp, final); throws lf::Error naming the path on failure

 private:
  std::string final_path_;
  std::string temp_path_;
  bool in_place_ = false;
  bool committed_ = false;
  int signal_slot_ = -1;  // this file's entry in the signal handler's list of temporaries
};

// Fails with a one-line error naming `path` if a file cannot be created there (missing or read-only directory,
// an existing directory, a FIFO, socket or block device). `what` names the flag in the message.
void check_output_writable(const std::string& path, const char* what);

// Fails when two outputs of one run would land on the same file (`-o x --save-latents x`); empty paths are
// ignored. Each entry is {flag, path}.
void check_distinct_outputs(const std::vector<std::pair<std::string, std::string>>& outputs);

// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace lf
