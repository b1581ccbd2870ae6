#include "batch_manifest.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "machine_output.h"

namespace lf::cmd {

namespace {

namespace fs = std::filesystem;

// Prompts come from users' files and may not be UTF-8: such bytes become U+FFFD in the manifest instead of
// failing the entry (the prompt itself is still used as given).
std::string dump_line(const nlohmann::ordered_json& object) {
  return object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

template <typename T>
T field(const nlohmann::json& object, const char* key) {
  LF_CHECK(object.contains(key), "no \"{}\"", key);
  try {
    return object.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("\"{}\" has the wrong type ({})", key, object.at(key).type_name());
  }
}

}  // namespace

namespace {

nlohmann::ordered_json ordered(const ManifestLine& line) {
  nlohmann::ordered_json object;
  object["schema_version"] = kJsonSchemaVersion;
  object["entry"] = line.entry;
  object["line"] = line.line;
  object["name"] = line.name;
  object["status"] = line.status;
  object["seconds"] = line.seconds;
  if (line.prompt_schedule.empty()) object["prompt"] = line.prompt;
  else object["prompt_schedule"] = line.prompt_schedule;
  object["seed"] = line.seed;
  object["frames"] = line.frames;
  object["outputs"] = line.outputs;
  object["sha256"] = line.sha256;
  object["error"] = line.error;
  object["key"] = line.key;
  object["shard"] = line.shard;
  object["entries"] = line.entries;
  object["prompts_sha256"] = line.prompts_sha256;
  return object;
}

}  // namespace

ManifestLine manifest_line_from_json(const nlohmann::json& object) {
  LF_CHECK(object.is_object(), "not a JSON object");
  // Lines written before schema_version existed have none; they read as version 1.
  if (object.contains("schema_version"))
    LF_CHECK(object["schema_version"] == kJsonSchemaVersion, "\"schema_version\" {} (this build reads {})",
             object["schema_version"].dump(), kJsonSchemaVersion);
  ManifestLine line;
  line.entry = field<int64_t>(object, "entry");
  line.line = field<int64_t>(object, "line");
  line.name = field<std::string>(object, "name");
  line.status = field<std::string>(object, "status");
  LF_CHECK(line.status == "ok" || line.status == "failed", "\"status\" '{}' is neither ok nor failed", line.status);
  line.seconds = field<double>(object, "seconds");
  if (object.contains("prompt_schedule")) line.prompt_schedule = field<std::string>(object, "prompt_schedule");
  else line.prompt = field<std::string>(object, "prompt");
  line.seed = field<uint64_t>(object, "seed");
  line.frames = field<int64_t>(object, "frames");
  line.outputs = field<std::map<std::string, std::string>>(object, "outputs");
  line.sha256 = field<std::map<std::string, std::string>>(object, "sha256");
  line.error = field<std::string>(object, "error");
  line.key = field<std::string>(object, "key");
  line.shard = field<std::string>(object, "shard");
  line.entries = field<int64_t>(object, "entries");
  line.prompts_sha256 = field<std::string>(object, "prompts_sha256");
  LF_CHECK(line.entry >= 0 && line.entry < line.entries, "\"entry\" {} is outside 0 .. {}", line.entry,
           line.entries - 1);
  return line;
}

std::vector<ManifestLine> read_manifest(const std::string& path, std::vector<std::string>* notes) {
  std::vector<ManifestLine> lines;
  std::error_code error;
  if (!fs::exists(path, error)) return lines;
  LF_CHECK(fs::is_regular_file(path, error), "manifest '{}': not a regular file", path);
  std::ifstream file(path, std::ios::binary);
  LF_CHECK(file.good(), "manifest '{}': cannot read it", path);
  std::stringstream bytes;
  bytes << file.rdbuf();
  const std::string text = bytes.str();
  size_t start = 0;
  int64_t number = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    ++number;
    // Only a line with its newline was written whole: a kill -9 mid-append can leave a prefix without one.
    if (end == std::string::npos) {
      if (notes) notes->push_back(fmt::format("manifest '{}' line {}: incomplete or damaged (a run stopped while "
                                              "writing it?); ignored", path, number));
      break;
    }
    const std::string text_line = text.substr(start, end - start);
    start = end + 1;
    if (text_line.empty()) continue;
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(text_line);
    } catch (const nlohmann::json::exception&) {
      // A torn line that a later run terminated (ManifestWriter), or damage: either way not a record.
      if (notes) notes->push_back(fmt::format("manifest '{}' line {}: incomplete or damaged (a run stopped while "
                                              "writing it?); ignored", path, number));
      continue;
    }
    try {
      lines.push_back(manifest_line_from_json(object));
    } catch (const std::exception& problem) {
      if (notes) notes->push_back(fmt::format("manifest '{}' line {}: {}; ignored", path, number, problem.what()));
    }
  }
  return lines;
}

ManifestWriter::ManifestWriter(std::string path) : path_(std::move(path)) {
  std::error_code error;
  const bool existed = fs::exists(path_, error);
  if (existed) LF_CHECK(fs::is_regular_file(path_, error), "manifest '{}': not a regular file", path_);
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  LF_CHECK(fd_ >= 0, "cannot open manifest '{}': {}", path_, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int lock_error = errno;
    ::close(fd_);
    fd_ = -1;
    LF_CHECK(lock_error != EWOULDBLOCK, "manifest '{}' is in use by another lightforce batch (the same --out-dir and "
             "--shard): wait for it or give another --out-dir", path_);
    fail("cannot lock manifest '{}': {}", path_, std::strerror(lock_error));
  }
  // A crash mid-append leaves a last line without its newline; end it here so the next line stays whole.
  struct stat info {};
  if (::fstat(fd_, &info) == 0 && info.st_size > 0) {
    char last = '\n';
    if (::pread(fd_, &last, 1, info.st_size - 1) == 1 && last != '\n')
      LF_CHECK(::write(fd_, "\n", 1) == 1, "cannot write manifest '{}': {}", path_, std::strerror(errno));
  }
  if (!existed) {
    // The new file's directory entry, so that a crash of the machine (not only of the process) keeps the file.
    const std::string dir = fs::path(path_).parent_path().empty() ? "." : fs::path(path_).parent_path().string();
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }
}

ManifestWriter::~ManifestWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void ManifestWriter::append(const ManifestLine& line) {
  const std::string text = dump_line(ordered(line)) + "\n";
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    LF_CHECK(n > 0, "cannot write manifest '{}': {}", path_, std::strerror(errno));
    written += size_t(n);
  }
  LF_CHECK(::fsync(fd_) == 0, "cannot flush manifest '{}': {}", path_, std::strerror(errno));
}

MergeResult merge_manifests(const std::vector<std::string>& manifest_paths, const std::string& output_dir,
                            std::vector<std::string>* notes) {
  struct Chosen {
    ManifestLine line;
    std::string file;
  };
  std::map<int64_t, Chosen> chosen;
  MergeResult result;
  std::string prompts_sha256, first_file;
  for (const std::string& path : manifest_paths) {
    std::error_code error;
    LF_CHECK(fs::is_regular_file(path, error), "manifest '{}': not a regular file (or missing)", path);
    std::map<int64_t, ManifestLine> last;  // within one file the latest line of an entry wins
    for (ManifestLine& line : read_manifest(path, notes)) {
      if (prompts_sha256.empty()) {
        prompts_sha256 = line.prompts_sha256;
        result.entries = line.entries;
        first_file = path;
      }
      LF_CHECK(line.prompts_sha256 == prompts_sha256 && line.entries == result.entries,
               "manifest '{}' entry {} comes from another prompts file than '{}': merge manifests of one batch only",
               path, line.entry, first_file);
      // Paths move from "relative to this manifest" to "relative to the merged one".
      const fs::path base = fs::absolute(fs::path(path)).parent_path();
      for (auto& [kind, output] : line.outputs) {
        const fs::path absolute = (base / output).lexically_normal();
        output = output_dir.empty() ? absolute.string()
                                    : absolute.lexically_relative(fs::absolute(fs::path(output_dir))).string();
      }
      last[line.entry] = std::move(line);
    }
    for (auto& [entry, line] : last) {
      auto place = chosen.find(entry);
      if (place == chosen.end()) {
        chosen.emplace(entry, Chosen{std::move(line), path});
        continue;
      }
      const ManifestLine& held = place->second.line;
      if (held.status == "ok" && line.status == "ok") {
        LF_CHECK(held.sha256 == line.sha256, "entry {}: '{}' and '{}' both finished it but with different outputs "
                 "(different settings?): keep one", entry, place->second.file, path);
      } else if (line.status == "ok") {
        place->second = Chosen{std::move(line), path};
      }
    }
  }
  for (int64_t entry = 0; entry < result.entries; ++entry)
    if (!chosen.count(entry)) result.missing.push_back(entry);
  for (auto& [entry, held] : chosen) result.lines.push_back(std::move(held.line));
  return result;
}

std::string manifest_text(const std::vector<ManifestLine>& lines) {
  std::string text;
  for (const ManifestLine& line : lines) text += dump_line(ordered(line)) + "\n";
  return text;
}

}  // namespace lf::cmd
