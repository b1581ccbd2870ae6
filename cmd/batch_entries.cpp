#include "batch_entries.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/digest.h"
#include "core/error.h"

namespace lf::cmd {

namespace {

namespace fs = std::filesystem;

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

// A JSON value given to "set" as {"key": value}: strings as written, anything else in JSON syntax, which is also
// YAML flow syntax (so [1000, 500] reaches the config parser as a list).
std::string override_value(const nlohmann::json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// "out" names a place inside --out-dir: relative, no "..", no empty or "." parts, no control characters.
void check_out_name(const std::string& name, const std::string& where) {
  LF_CHECK(!name.empty(), "{}: \"out\" is empty", where);
  for (unsigned char c : name) LF_CHECK(c >= 0x20 && c != 0x7f, "{}: \"out\" holds a control character", where);
  const fs::path path(name);
  LF_CHECK(path.is_relative() && !path.has_root_name(), "{}: \"out\" '{}' must be relative to --out-dir", where,
           name);
  LF_CHECK(name.back() != '/', "{}: \"out\" '{}' names a directory, not a file stem", where, name);
  for (const fs::path& part : path)
    LF_CHECK(part != ".." && part != "." && !part.empty(), "{}: \"out\" '{}' may not contain '.' or '..' parts",
             where, name);
}

BatchEntry read_json_entry(const std::string& text, const std::string& where) {
  nlohmann::json object;
  try {
    object = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& error) {
    // nlohmann's "parse error at line 1, column 5: ..." counts within this one line: keep the column only.
    std::string message = error.what();
    const size_t detail = message.find("] ");
    if (detail != std::string::npos) message = message.substr(detail + 2);
    const size_t line_one = message.find("at line 1, column");
    if (line_one != std::string::npos) message.replace(line_one, std::string("at line 1, ").size(), "at ");
    fail("{}: not valid JSON ({})", where, message);
  }
  LF_CHECK(object.is_object(), "{}: expected a JSON object {{\"prompt\": ...}}, found {}", where, object.type_name());
  BatchEntry entry;
  for (const auto& [key, value] : object.items()) {
    auto expect = [&](bool ok, const char* type) {
      LF_CHECK(ok, "{}: \"{}\" must be {}, found {}", where, key, type, value.type_name());
    };
    if (key == "prompt") {
      expect(value.is_string(), "a string");
      entry.prompt = value.get<std::string>();
    } else if (key == "prompt_schedule") {
      expect(value.is_string(), "a string");
      entry.prompt_schedule = value.get<std::string>();
    } else if (key == "seed") {
      expect(value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0),
             "a non-negative integer");
      entry.seed = value.get<uint64_t>();
    } else if (key == "frames") {
      expect(value.is_number_integer(), "an integer");
      entry.frames = value.get<int64_t>();
    } else if (key == "out") {
      expect(value.is_string(), "a string");
      entry.name = value.get<std::string>();
      // "cat.mp4" and "cat" mean the same entry files (cat.mp4, cat.latents.safetensors, ...).
      if (entry.name.size() > 4 && entry.name.ends_with(".mp4")) entry.name.resize(entry.name.size() - 4);
      check_out_name(entry.name, where);
    } else if (key == "set") {
      expect(value.is_array() || value.is_object(), "a list of \"key=value\" or an object {\"key\": value}");
      if (value.is_array()) {
        for (const auto& item : value) {
          LF_CHECK(item.is_string(), "{}: \"set\" items must be strings \"key=value\", found {}", where,
                   item.type_name());
          entry.overrides.push_back(item.get<std::string>());
        }
      } else {
        for (const auto& [name, item] : value.items()) entry.overrides.push_back(name + "=" + override_value(item));
      }
    } else {
      fail("{}: unknown key \"{}\" (known: prompt, prompt_schedule, seed, frames, out, set)", where, key);
    }
  }
  LF_CHECK(entry.prompt.empty() || entry.prompt_schedule.empty(), "{}: give \"prompt\" or \"prompt_schedule\", not both",
           where);
  return entry;
}

}  // namespace

std::string prompt_slug(const std::string& prompt) {
  constexpr size_t kMaxSlug = 40;
  std::string slug;
  for (unsigned char c : prompt) {
    if (slug.size() >= kMaxSlug) break;
    if (std::isalnum(c) && c < 0x80) {
      slug += char(std::tolower(c));
    } else if (!slug.empty() && slug.back() != '-') {
      slug += '-';
    }
  }
  while (!slug.empty() && slug.back() == '-') slug.pop_back();
  return slug;
}

BatchFile read_batch_file(const std::string& path) {
  // A FIFO or device would block or never end: only a regular file is read.
  std::error_code error;
  LF_CHECK(fs::is_regular_file(path, error), "--prompts '{}': not a regular file (or missing)", path);
  std::ifstream file(path, std::ios::binary);
  LF_CHECK(file.good(), "--prompts '{}': cannot read it", path);
  std::stringstream bytes;
  bytes << file.rdbuf();
  const std::string text = bytes.str();

  BatchFile batch;
  batch.sha256 = sha256_hex(text.data(), text.size());
  std::optional<bool> jsonl;  // decided by the first entry line
  std::istringstream lines(text);
  int64_t line_number = 0;
  for (std::string raw; std::getline(lines, raw);) {
    ++line_number;
    const std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    if (!jsonl) jsonl = line[0] == '{';
    const std::string where = fmt::format("--prompts '{}' line {}", path, line_number);
    BatchEntry entry = *jsonl ? read_json_entry(line, where) : BatchEntry{};
    if (!*jsonl) entry.prompt = line;
    entry.index = int64_t(batch.entries.size());
    entry.line = line_number;
    if (entry.name.empty()) {
      const std::string slug = prompt_slug(entry.prompt.empty() ? entry.prompt_schedule : entry.prompt);
      entry.name = fmt::format("{:05d}", entry.index) + (slug.empty() ? "" : "-" + slug);
    }
    batch.entries.push_back(std::move(entry));
  }
  LF_CHECK(!batch.entries.empty(), "--prompts '{}': no entries (one prompt a line or one JSON object a line; # starts "
           "a comment)", path);
  // Two entries writing one file would overwrite each other and confuse resume. Names compare as written: the
  // derived ones carry the index, so only "out" values can meet.
  std::map<std::string, int64_t> line_of_name;
  for (const BatchEntry& entry : batch.entries) {
    const auto [place, inserted] = line_of_name.emplace(fs::path(entry.name).lexically_normal().string(), entry.line);
    LF_CHECK(inserted, "--prompts '{}' line {}: output name '{}' is already used by line {}", path, entry.line,
             entry.name, place->second);
  }
  return batch;
}

std::string Shard::text() const { return fmt::format("{}/{}", index, count); }

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  auto number = [&](const std::string& digits, int64_t& value) {
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos)
      return false;
    value = std::stoll(digits);
    return true;
  };
  Shard shard;
  const bool parsed = slash != std::string::npos && number(text.substr(0, slash), shard.index) &&
                      number(text.substr(slash + 1), shard.count);
  LF_CHECK(parsed, "--shard '{}': expected I/N, e.g. 0/4 (shard I of N, I from 0)", text);
  LF_CHECK(shard.count >= 1 && shard.index < shard.count, "--shard '{}': I must be in 0 .. N-1", text);
  return shard;
}

}  // namespace lf::cmd
