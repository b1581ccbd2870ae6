#pragma once
// What `lightforce batch` runs: the entries of a prompts file (plain text, one prompt a line, or JSONL with
// per-entry settings), their deterministic output names, and which of them a shard takes.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lf::cmd {

struct BatchEntry {
  int64_t index = 0;  // 0-based among the file's entries (blank and '#' lines are not entries)
  int64_t line = 0;   // 1-based line of the file, for messages
  std::string name;   // output stem relative to --out-dir: JSONL "out", else "<index, 5 digits>-<prompt slug>"
  std::string prompt;           // "" when prompt_schedule is given (or the entry has no prompt: it fails)
  std::string prompt_schedule;  // "0:...;4:..." (generate --prompt-schedule)
  std::optional<uint64_t> seed;
  std::optional<int64_t> frames;
  std::vector<std::string> overrides;  // "key=value", as --set
};

struct BatchFile {
  std::vector<BatchEntry> entries;
  std::string sha256;  // of the file's bytes: manifests of different files are never merged together
};

// Reads `path`. Plain text: each non-blank line not starting with '#' is a prompt (surrounding spaces trimmed).
// JSONL (the first entry line starts with '{'): each such line is an object with "prompt" or "prompt_schedule"
// and optional "seed", "frames", "out", "set" (["key=value", ...] or {"key": value}). A malformed line, an
// unknown key or a wrong type fails the whole file with one line naming file:line; a bad value inside a valid
// entry (an unknown --set key, frames not whole chunks, an empty prompt) fails only that entry, when it runs.
BatchFile read_batch_file(const std::string& path);

// "a red circle moves right!" -> "a-red-circle-moves-right": lowercase ASCII letters and digits, other runs -> '-',
// at most 40 characters. Deterministic, so a rerun finds the same files.
std::string prompt_slug(const std::string& prompt);

struct Shard {
  int64_t index = 0;  // i of "i/n"
  int64_t count = 1;  // n
  bool takes(int64_t entry_index) const { return entry_index % count == index; }
  std::string text() const;  // "i/n"
};
// "i/n" with 0 <= i < n; errors name --shard.
Shard parse_shard(const std::string& text);

}  // namespace lf::cmd
