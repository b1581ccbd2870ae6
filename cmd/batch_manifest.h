#pragma once
// The batch manifest: JSONL, one line per finished entry (ok or failed), appended as each entry finishes with one
// write(2) and fsync, so a process killed at any moment (kill -9 included) leaves every earlier line complete. A
// line cut short by a crash mid-write is ignored on reading (and terminated before the next append, so it can
// never swallow the next line). An entry may have several lines (a failed try, then a later one): the last wins.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lf::cmd {

struct ManifestLine {
  int64_t entry = 0;            // index among the prompts file's entries
  int64_t line = 0;             // line of the prompts file
  std::string name;             // output stem
  std::string status;           // "ok" or "failed"
  double seconds = 0;           // wall time of the entry (encode + generate + write + hash)
  std::string prompt, prompt_schedule;
  uint64_t seed = 0;
  int64_t frames = 0;           // latent frames
  std::string key;              // sha256 of every setting that decides the entry's bytes: resume compares it
  std::map<std::string, std::string> outputs;  // kind (video, latents, noise, summary) -> path relative to the
                                               // manifest's directory
  std::map<std::string, std::string> sha256;   // kind -> sha256 of that file
  std::string error;            // failed: the one-line error
  std::string shard;            // "i/n"
  int64_t entries = 0;          // entries in the prompts file (all shards)
  std::string prompts_sha256;   // of the prompts file
};

// The lines as JSONL (one object a line, fields in a fixed order, each line ending in '\n').
std::string manifest_text(const std::vector<ManifestLine>& lines);
// Throws lf::Error when a field is missing or has the wrong type.
ManifestLine manifest_line_from_json(const nlohmann::json& object);

// Every complete, well-formed line of `path` in order (none when the file does not exist). Lines that do not parse
// (a torn last line) are skipped; a note for each goes to `notes`.
std::vector<ManifestLine> read_manifest(const std::string& path, std::vector<std::string>* notes);

// Appends lines to a manifest, holding an exclusive lock (flock) on it so that a second process with the same
// manifest (the same shard started twice) fails at once instead of interleaving. The lock dies with the process.
class ManifestWriter {
 public:
  explicit ManifestWriter(std::string path);
  ~ManifestWriter();
  ManifestWriter(const ManifestWriter&) = delete;
  ManifestWriter& operator=(const ManifestWriter&) = delete;
  void append(const ManifestLine& line);  // one write of the whole line + '\n', then fsync; throws on failure
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Merges manifests (shards, reruns): per file the last line of an entry wins; across files an "ok" line wins over
// a failed one, and two "ok" lines whose outputs differ are an error naming both files. Output paths are rewritten
// relative to `output_dir` (absolute when it is empty). All lines must come from the same prompts file. Sorted by
// entry.
struct MergeResult {
  std::vector<ManifestLine> lines;
  int64_t entries = 0;          // entries of the prompts file
  std::vector<int64_t> missing; // entries no manifest has a line for
};
MergeResult merge_manifests(const std::vector<std::string>& manifest_paths, const std::string& output_dir,
                            std::vector<std::string>* notes);

}  // namespace lf::cmd
