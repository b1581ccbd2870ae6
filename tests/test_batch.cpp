// lightforce batch end to end: the same bytes as generate, resume after kill -9, shards that cover every entry
// once, a failed entry recorded while the rest complete, and merge-manifests. Bad batch input (missing files,
// malformed JSONL, bad --shard / --device) is in test_bad_input's catalogue.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using lf::test::run;
using lf::test::fresh_tmp_path;
using lf::test::RunResult;

using lf::test::read_bytes;

std::string sha256_of(const std::string& path) {
  const std::string bytes = read_bytes(path);
  return lf::sha256_hex(bytes.data(), bytes.size());
}

// The manifest's parsable lines; `torn` counts the lines that do not parse (a write cut short by kill -9).
std::vector<nlohmann::json> manifest_lines(const std::string& path, int* torn = nullptr) {
  std::vector<nlohmann::json> lines;
  std::ifstream file(path);
  for (std::string line; std::getline(file, line);) {
    if (line.empty()) continue;
    try {
      lines.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
      if (torn) ++*torn;
    }
  }
  return lines;
}

// A line without what differs between two runs of the same batch by design (wall time, which shard ran it).
nlohmann::json comparable(nlohmann::json line) {
  line.erase("seconds");
  line.erase("shard");
  return line;
}

std::map<int64_t, nlohmann::json> by_entry(const std::vector<nlohmann::json>& lines) {
  std::map<int64_t, nlohmann::json> entries;
  for (const nlohmann::json& line : lines) entries[line["entry"].get<int64_t>()] = comparable(line);
  return entries;
}

bool has_temporaries(const std::string& dir) {
  for (const auto& item : fs::recursive_directory_iterator(dir))
    if (item.path().filename().string().find(".tmp-") != std::string::npos) return true;
  return false;
}

// Every file an ok line lists exists with the sha256 it records, and is byte-identical to the same file of `ref`.
void check_outputs(const std::string& dir, const std::vector<nlohmann::json>& lines, const std::string& ref = "") {
  for (const nlohmann::json& line : lines) {
    if (line["status"] != "ok") continue;
    for (const auto& [kind, path] : line["outputs"].items()) {
      const std::string file = dir + "/" + path.get<std::string>();
      CAPTURE(file);
      REQUIRE(fs::is_regular_file(file));
      CHECK(sha256_of(file) == line["sha256"][kind].get<std::string>());
      if (!ref.empty()) CHECK(read_bytes(file) == read_bytes(ref + "/" + path.get<std::string>()));
    }
  }
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Six prompts of the testbed grammar; the random `tiny` model at one chunk (3 frames) keeps each entry ~1 s.
std::string six_prompts() {
  const std::string path = lf::test::tmp_path("batch_six.txt");
  write_text(path, "a red circle moves right\n# a comment, not an entry\n\na blue square falls\n"
                   "a green triangle moves left\na yellow circle moves up\na red square moves down\n"
                   "a blue circle moves left\n");
  return path;
}
const std::string kTiny = "batch -m tiny --frames 3 --seed 40 --save-latents ";

pid_t spawn(const std::string& args) {
  const std::string command = "exec " + std::string(LF_BINARY) + " " + args + " >/dev/null 2>/dev/null";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The uninterrupted run the other cases compare with (made once).
const std::string& reference_dir() {
  static const std::string dir = [] {
    const std::string out = fresh_tmp_path("batch_reference");
    const RunResult result = run(kTiny + "--quiet --prompts " + six_prompts() + " --out-dir " + out);
    REQUIRE(result.exit_code == 0);
    return out;
  }();
  return dir;
}

}  // namespace

TEST_CASE("batch writes the same bytes as generate for the same entry and seed (testbed, reused decoder)") {
  const std::string prompts = lf::test::tmp_path("batch_two.txt");
  write_text(prompts, "a red circle moves right\na blue square falls\n");
  const std::string out = fresh_tmp_path("batch_same");
  const RunResult batch = run("batch --frames 3 --seed 7 --save-latents --quiet --json --prompts " + prompts +
                              " --out-dir " + out);
  CAPTURE(batch.err);
  REQUIRE(batch.exit_code == 0);
  CHECK(nlohmann::json::parse(batch.out)["ok"] == 2);
  const std::vector<nlohmann::json> lines = manifest_lines(out + "/manifest.jsonl");
  REQUIRE(lines.size() == 2);
  check_outputs(out, lines);
  // Entry 1 (the second video through the same model, encoder and decoder) has seed 7 + 1.
  CHECK(lines[1]["seed"] == 8);
  CHECK(lines[1]["name"] == "00001-a-blue-square-falls");
  const std::string video = fresh_tmp_path("batch_same_generate.mp4"), latents = fresh_tmp_path("batch_same_generate.safetensors");
  const RunResult generate = run("generate --frames 3 --seed 8 --quiet --prompt 'a blue square falls' -o " + video +
                                 " --save-latents " + latents);
  REQUIRE(generate.exit_code == 0);
  CHECK(read_bytes(video) == read_bytes(out + "/00001-a-blue-square-falls.mp4"));
  CHECK(read_bytes(latents) == read_bytes(out + "/00001-a-blue-square-falls.latents.safetensors"));
  CHECK(read_bytes(video) != read_bytes(out + "/00000-a-red-circle-moves-right.mp4"));
}

TEST_CASE("a batch killed with kill -9 mid-way and resumed equals an uninterrupted run") {
  const std::string& ref = reference_dir();
  const std::vector<nlohmann::json> reference = manifest_lines(ref + "/manifest.jsonl");
  REQUIRE(reference.size() == 6);
  check_outputs(ref, reference);

  const std::string out = fresh_tmp_path("batch_killed");
  const std::string args = kTiny + "--quiet --prompts " + six_prompts() + " --out-dir " + out;
  const pid_t pid = spawn(args);
  // Kill once two entries are in the manifest, while the third is being written.
  const std::string manifest = out + "/manifest.jsonl";
  const auto started = std::chrono::steady_clock::now();
  while (manifest_lines(manifest).size() < 2 &&
         std::chrono::steady_clock::now() - started < std::chrono::seconds(300))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  CHECK(wait_exit_code(pid) == 128 + SIGKILL);
  const std::vector<nlohmann::json> before = manifest_lines(manifest);
  REQUIRE(before.size() >= 2);
  REQUIRE(before.size() < 6);  // it really stopped mid-way
  // Whatever sits at a final path is complete: the same bytes as the uninterrupted run's.
  for (const auto& item : fs::directory_iterator(out)) {
    const std::string name = item.path().filename().string();
    if (name == "manifest.jsonl" || name.find(".tmp-") != std::string::npos) continue;
    CAPTURE(name);
    CHECK(read_bytes(item.path().string()) == read_bytes(ref + "/" + name));
  }
  // A line cut short by a kill during its write: resume must ignore it and keep the next line whole.
  { std::ofstream(manifest, std::ios::app) << R"({"entry":5,"line":9,"name":"00005-a-b)"; }

  const RunResult resumed = run(kTiny + "--prompts " + six_prompts() + " --out-dir " + out);
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(resumed.err.find("entry 0 '00000-a-red-circle-moves-right': complete, skipped") != std::string::npos);
  CHECK(resumed.err.find("entry 1 '00001-a-blue-square-falls': complete, skipped") != std::string::npos);
  CHECK(resumed.err.find("line 3: incomplete or damaged") != std::string::npos);  // the torn line, noted
  int torn = 0;
  const std::vector<nlohmann::json> after = manifest_lines(manifest, &torn);
  CHECK(torn == 1);
  CHECK(after.size() == 6);  // skipped entries add no line: nothing finished twice
  CHECK(by_entry(after) == by_entry(reference));
  check_outputs(out, after, ref);
  CHECK_FALSE(has_temporaries(out));

  // An output changed after the fact is no longer "complete": only that entry runs again.
  const std::string video = out + "/00003-a-yellow-circle-moves-up.mp4";
  write_text(video, "truncated");
  const RunResult repaired = run(kTiny + "--prompts " + six_prompts() + " --out-dir " + out);
  REQUIRE(repaired.exit_code == 0);
  CHECK(repaired.err.find("1 ok, 0 failed, 5 skipped") != std::string::npos);
  CHECK(read_bytes(video) == read_bytes(ref + "/00003-a-yellow-circle-moves-up.mp4"));
}

TEST_CASE("two shards together cover every entry exactly once, and their merged manifest is the whole batch") {
  const std::string& ref = reference_dir();
  const std::string out = fresh_tmp_path("batch_shards");
  // Both shards at once into one directory, as two GPUs of one host would run them.
  const pid_t first = spawn(kTiny + "--quiet --shard 0/2 --prompts " + six_prompts() + " --out-dir " + out);
  const pid_t second = spawn(kTiny + "--quiet --shard 1/2 --prompts " + six_prompts() + " --out-dir " + out);
  CHECK(wait_exit_code(first) == 0);
  CHECK(wait_exit_code(second) == 0);
  const std::vector<nlohmann::json> shard0 = manifest_lines(out + "/manifest.shard-0-of-2.jsonl");
  const std::vector<nlohmann::json> shard1 = manifest_lines(out + "/manifest.shard-1-of-2.jsonl");
  std::multiset<int64_t> covered;
  for (const nlohmann::json& line : shard0) {
    covered.insert(line["entry"].get<int64_t>());
    CHECK(line["entry"].get<int64_t>() % 2 == 0);
  }
  for (const nlohmann::json& line : shard1) {
    covered.insert(line["entry"].get<int64_t>());
    CHECK(line["entry"].get<int64_t>() % 2 == 1);
  }
  CHECK(covered == std::multiset<int64_t>{0, 1, 2, 3, 4, 5});
  check_outputs(out, shard0, ref);  // an entry's seed is the batch seed + its index, whichever shard runs it
  check_outputs(out, shard1, ref);

  const std::string merged = out + "/merged.jsonl";
  const RunResult merge = run("merge-manifests -o " + merged + " " + out);
  CAPTURE(merge.err);
  CHECK(merge.exit_code == 0);
  CHECK(merge.err.find("6 entries: 6 ok, 0 failed, 0 missing") != std::string::npos);
  const std::vector<nlohmann::json> whole = manifest_lines(merged);
  REQUIRE(whole.size() == 6);
  for (size_t i = 0; i < whole.size(); ++i) CHECK(whole[i]["entry"] == int64_t(i));
  CHECK(by_entry(whole) == by_entry(manifest_lines(ref + "/manifest.jsonl")));
  // One shard alone is an incomplete batch: exit 3, the missing entries named.
  const RunResult half = run("merge-manifests -o " + fresh_tmp_path("batch_half.jsonl") + " " + out +
                             "/manifest.shard-1-of-2.jsonl");
  CHECK(half.exit_code == 3);
  CHECK(half.err.find("3 missing (entries 0 2 4)") != std::string::npos);
}

TEST_CASE("a failed entry is recorded with its error, the others complete, and the exit code says so") {
  const std::string prompts = lf::test::tmp_path("batch_bad_entry.jsonl");
  write_text(prompts, R"({"prompt": "a red circle moves right", "seed": 3}
{"prompt": "a blue square falls", "set": ["pipeline.shfit=2"]}
{"prompt": "a green triangle moves left", "out": "named/triangle.mp4", "set": {"pipeline.denoising_steps": [1000, 500]}}
{"prompt_schedule": "0:a red circle;1:a blue square", "frames": 6}
)");
  const std::string out = fresh_tmp_path("batch_bad_entry");
  const RunResult result = run("batch -m tiny --frames 3 --quiet --prompts " + prompts + " --out-dir " + out);
  CHECK(result.exit_code == 3);
  CHECK(result.err == "lightforce batch: entry 1 (line 2) failed: unknown config key 'pipeline.shfit'\n");
  const std::vector<nlohmann::json> lines = manifest_lines(out + "/manifest.jsonl");
  REQUIRE(lines.size() == 4);
  CHECK(lines[0]["status"] == "ok");
  CHECK(lines[0]["seed"] == 3);
  CHECK(lines[1]["status"] == "failed");
  CHECK(lines[1]["error"].get<std::string>().find("pipeline.shfit") != std::string::npos);
  CHECK(lines[1]["outputs"].empty());
  CHECK(lines[2]["status"] == "ok");
  CHECK(lines[2]["outputs"]["video"] == "named/triangle.mp4");
  CHECK(lines[3]["status"] == "ok");
  CHECK(lines[3]["name"] == "00003-0-a-red-circle-1-a-blue-square");
  CHECK(lines[3]["frames"] == 6);
  check_outputs(out, lines);
  CHECK_FALSE(fs::exists(out + "/00001-a-blue-square-falls.mp4"));
  // A rerun retries only the failed entry (it fails again) and keeps the two finished ones.
  const RunResult again = run("batch -m tiny --frames 3 --prompts " + prompts + " --out-dir " + out);
  CHECK(again.exit_code == 3);
  CHECK(again.err.find("0 ok, 1 failed, 3 skipped") != std::string::npos);
  const RunResult merge = run("merge-manifests " + out);
  CHECK(merge.exit_code == 3);
  CHECK(merge.err.find("4 entries: 3 ok, 1 failed, 0 missing") != std::string::npos);
  // Other settings make an entry stale (its key changes): with another batch seed the entry with its own seed is
  // still complete, those with the default seed (batch seed + index) run again.
  const RunResult reseeded = run("batch -m tiny --frames 3 --seed 5 --prompts " + prompts + " --out-dir " + out);
  CHECK(reseeded.exit_code == 3);
  CHECK(reseeded.err.find("2 ok, 1 failed, 1 skipped") != std::string::npos);
  CHECK(manifest_lines(out + "/manifest.jsonl").back()["seed"] == 5 + 3);
}
