#include "io/atomic_file.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.h"

namespace lf {

namespace fs = std::filesystem;

namespace {

// The temporaries a signal handler must remove. Fixed storage, because a handler may only make async-signal-safe
// calls (unlink, raise): no allocation, no locks. A slot's path is written before its flag is set, and the flag is
// cleared before the path is reused, so the handler never reads a half-written path.
constexpr int kSignalSlots = 32;
char g_temp_paths[kSignalSlots][PATH_MAX];
std::atomic<bool> g_slot_used[kSignalSlots];
std::mutex g_slot_mutex;  // between threads that open files (not taken by the handler)

extern "C" void remove_temporaries_and_die(int signal_number) {
  for (int i = 0; i < kSignalSlots; ++i)
    if (g_slot_used[i].load(std::memory_order_acquire)) ::unlink(g_temp_paths[i]);
  // One line on stderr (write(2) is async-signal-safe; fmt is not), naming the signal.
  const char* message = signal_number == SIGINT    ? "lightforce: interrupted by SIGINT; unfinished outputs removed\n"
                        : signal_number == SIGTERM ? "lightforce: stopped by SIGTERM; unfinished outputs removed\n"
                                                   : "lightforce: stopped by SIGHUP; unfinished outputs removed\n";
  [[maybe_unused]] const ssize_t ignored = ::write(STDERR_FILENO, message, std::strlen(message));
  // Die of the same signal, so the parent sees "killed by SIGINT" (exit status 130 in a shell).
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

void install_signal_cleanup() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction current {};
      ::sigaction(signal_number, nullptr, &current);
      if (current.sa_handler == SIG_IGN) continue;  // e.g. nohup: keep ignoring what the caller ignores
      struct sigaction action {};
      action.sa_handler = remove_temporaries_and_die;
      sigemptyset(&action.sa_mask);
      ::sigaction(signal_number, &action, nullptr);
    }
  });
}

int register_temporary(const std::string& path) {
  // A path too long for the table is still removed by the destructor; only a signal could leave it behind.
  if (path.size() >= PATH_MAX) return -1;
  install_signal_cleanup();
  std::lock_guard<std::mutex> lock(g_slot_mutex);
  for (int i = 0; i < kSignalSlots; ++i) {
    if (g_slot_used[i].load(std::memory_order_relaxed)) continue;
    std::memcpy(g_temp_paths[i], path.c_str(), path.size() + 1);
    g_slot_used[i].store(true, std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_temporary(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_slot_mutex);
  g_slot_used[slot].store(false, std::memory_order_release);
}

const char* special_file_kind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISBLK(mode)) return "a block device";
  return nullptr;
}

}  // namespace

void check_output_writable(const std::string& path, const char* what) {
  LF_CHECK(!path.empty(), "{}: empty output path", what);
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0) {
    LF_CHECK(!S_ISDIR(info.st_mode), "{} '{}' is a directory", what, path);
    const char* kind = special_file_kind(info.st_mode);
    LF_CHECK(kind == nullptr, "{} '{}' is {}: give a regular file path", what, path, kind);
    if (S_ISCHR(info.st_mode)) {
      LF_CHECK(::access(path.c_str(), W_OK) == 0, "{} '{}': device is not writable", what, path);
      return;  // written in place: its directory need not be writable
    }
  }
  const fs::path parent = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  std::error_code error;
  LF_CHECK(fs::is_directory(parent, error), "{} '{}': directory '{}' does not exist", what, path, parent.string());
  LF_CHECK(::access(parent.c_str(), W_OK) == 0, "{} '{}': directory '{}' is not writable", what, path,
           parent.string());
}

void check_distinct_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  auto resolved = [](const std::string& path) {
    std::error_code error;  // a path that cannot be resolved compares as written
    const fs::path absolute = fs::absolute(path, error);
    const fs::path canonical = fs::weakly_canonical(absolute, error);
    return error ? fs::path(path).lexically_normal() : canonical;
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].second.empty()) continue;
    for (size_t j = i + 1; j < outputs.size(); ++j)
      LF_CHECK(outputs[j].second.empty() || resolved(outputs[i].second) != resolved(outputs[j].second),
               "{} and {} name the same file '{}': give each its own path", outputs[i].first, outputs[j].first,
               outputs[i].second);
  }
}

AtomicFile::AtomicFile(std::string final_path) : final_path_(std::move(final_path)) {
  check_output_writable(final_path_, "output");
  struct stat info {};
  in_place_ = ::stat(final_path_.c_str(), &info) == 0 && S_ISCHR(info.st_mode);
  if (in_place_) {
    temp_path_ = final_path_;
    return;
  }
  temp_path_ = final_path_ + ".tmp-" + std::to_string(::getpid());
  signal_slot_ = register_temporary(temp_path_);
}

AtomicFile::~AtomicFile() {
  // Never remove the final path of an in-place write: that is the device node itself.
  if (!committed_ && !in_place_) std::remove(temp_path_.c_str());
  unregister_temporary(signal_slot_);
}

void AtomicFile::commit() {
  if (!in_place_)
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
