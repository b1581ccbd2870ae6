// lightforce merge-manifests: the manifests of a batch's shards (and reruns) as one, an entry a line, with the
// entries no shard finished listed, so the end of a cluster run is one command and one exit code.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "batch_manifest.h"
#include "commands.h"
#include "machine_output.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "run_setup.h"

namespace lf::cmd {

namespace {

namespace fs = std::filesystem;

// A directory stands for the batch manifests in it (manifest.jsonl, manifest.shard-I-of-N.jsonl), by name order.
std::vector<std::string> manifest_files(const std::vector<std::string>& inputs, const std::string& output) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    if (!fs::is_directory(input, error)) {
      files.push_back(input);  // merge_manifests names it when it is not a readable regular file
      continue;
    }
    std::vector<std::string> found;
    for (const auto& item : fs::directory_iterator(input, error)) {
      const std::string name = item.path().filename().string();
      const bool manifest = name == "manifest.jsonl" || (name.rfind("manifest.shard-", 0) == 0 && name.ends_with(".jsonl"));
      if (manifest && item.is_regular_file() &&
          (output.empty() || !fs::equivalent(item.path(), fs::path(output), error)))
        found.push_back(item.path().string());
    }
    LF_CHECK(!found.empty(), "'{}': no manifest.jsonl or manifest.shard-I-of-N.jsonl in this directory", input);
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

}  // namespace

int merge_manifests(int argc, char** argv) {
  cxxopts::Options flags("lightforce merge-manifests",
                         "Merge the manifests of a batch's shards into one (docs/batch.md). Exit code 3 when an "
                         "entry failed or no manifest has it.");
  flags.add_options()
      ("o,output", "merged manifest (JSONL); default: stdout", cxxopts::value<std::string>())
      ("q,quiet", "no summary line on stderr")
      ("json", "print a JSON summary on stdout (needs -o)")
      ("h,help", "show this help")
      ("inputs", "manifest files or directories holding them", cxxopts::value<std::vector<std::string>>());
  flags.parse_positional({"inputs"});
  flags.positional_help("MANIFEST_OR_DIR...");
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  LF_USAGE_CHECK(result.count("inputs"), "no manifests given: lightforce merge-manifests [-o FILE] MANIFEST_OR_DIR...");
  const std::string output = result.count("output") ? result["output"].as<std::string>() : "";
  const bool quiet = result.count("quiet"), json = result.count("json");
  LF_USAGE_CHECK(!json || !output.empty(), "--json prints on stdout, where the merged manifest goes without -o: give -o");
  if (!output.empty()) check_output_writable(output, "--output");

  const std::vector<std::string> files = manifest_files(result["inputs"].as<std::vector<std::string>>(), output);
  std::vector<std::string> notes;
  const std::string output_dir = output.empty() ? "" : fs::absolute(output).parent_path().string();
  const MergeResult merged = merge_manifests(files, output_dir, &notes);
  LF_CHECK(!merged.lines.empty(), "no complete manifest line in {}", fmt::join(files, ", "));
  const std::string text = manifest_text(merged.lines);
  if (output.empty()) fmt::print("{}", text);
  else write_file_atomic(output, text);

  const int64_t ok = std::count_if(merged.lines.begin(), merged.lines.end(),
                                   [](const ManifestLine& line) { return line.status == "ok"; });
  const int64_t failed = int64_t(merged.lines.size()) - ok;
  if (!quiet) {
    for (const std::string& note : notes) fmt::print(stderr, "note: {}\n", note);
    std::string missing;
    for (size_t i = 0; i < merged.missing.size() && i < 10; ++i) missing += fmt::format(" {}", merged.missing[i]);
    if (merged.missing.size() > 10) missing += " ...";
    fmt::print(stderr, "lightforce merge-manifests: {} manifests, {} entries: {} ok, {} failed, {} missing{}\n",
               files.size(), merged.entries, ok, failed, merged.missing.size(),
               merged.missing.empty() ? "" : " (entries" + missing + ")");
  }
  if (json) {
    const nlohmann::json summary = versioned({{"manifests", files}, {"entries", merged.entries}, {"ok", ok},
                                              {"failed", failed}, {"missing", merged.missing}, {"output", output}});
    fmt::print("{}\n", summary.dump(2));
  }
  return failed > 0 || !merged.missing.empty() ? kExitSomeEntriesFailed : 0;
}

}  // namespace lf::cmd
