#include "pipeline/prompt_schedule.h"

#include <charconv>

#include "core/error.h"

namespace lf {

namespace {
std::string trimmed(const std::string& text) {
  const size_t begin = text.find_first_not_of(" \t\n");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\n") - begin + 1);
}
}  // namespace

std::vector<PromptAtChunk> parse_prompt_schedule(const std::string& text, int64_t chunks) {
  std::vector<PromptAtChunk> schedule;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(';', begin), text.size());
    const std::string entry = trimmed(text.substr(begin, end - begin));
    begin = end + 1;
    if (entry.empty() && begin > text.size() && !schedule.empty()) break;  // a trailing ';'
    const size_t colon = entry.find(':');
    LF_CHECK(colon != std::string::npos, "--prompt-schedule: entry '{}' is not CHUNK:PROMPT", entry);
    const std::string number = trimmed(entry.substr(0, colon));
    int64_t chunk = -1;
    const auto [rest, error] = std::from_chars(number.data(), number.data() + number.size(), chunk);
    LF_CHECK(error == std::errc() && rest == number.data() + number.size() && chunk >= 0,
             "--prompt-schedule: '{}' in entry '{}' is not a chunk index", number, entry);
    const std::string prompt = trimmed(entry.substr(colon + 1));
    LF_CHECK(!prompt.empty(), "--prompt-schedule: entry '{}' has an empty prompt", entry);
    LF_CHECK(chunk < chunks, "--prompt-schedule: chunk {} is past the last chunk {} of this run", chunk, chunks - 1);
    LF_CHECK(schedule.empty() ? chunk == 0 : chunk > schedule.back().first_chunk,
             "--prompt-schedule: entry '{}': the first entry must be chunk 0 and chunks must increase", entry);
    schedule.push_back({chunk, prompt});
  }
  return schedule;
}

}  // namespace lf
