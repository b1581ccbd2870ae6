#pragma once
// `--prompt-schedule "0:a red circle moves right;12:a blue square falls"`: which prompt conditions which chunks.
// Entries are "chunk:prompt" separated by ';' (a prompt may contain ':' after its chunk number); the first entry is
// chunk 0 and chunks increase strictly.
#include <cstdint>
#include <string>
#include <vector>

namespace lf {

struct PromptAtChunk {
  int64_t first_chunk;
  std::string prompt;
};

// Errors name the entry and the rule it breaks; `chunks` is the run's chunk count.
std::vector<PromptAtChunk> parse_prompt_schedule(const std::string& text, int64_t chunks);

}  // namespace lf
