// lightforce batch: many videos from one prompts file with the model, text encoder and decoder loaded once;
// resumable (a manifest line per finished entry), shardable (--shard i/n) across processes, GPUs and machines.
#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "batch_entries.h"
#include "batch_manifest.h"
#include "commands.h"
#include "machine_output.h"
#include "config/config.h"
#include "core/digest.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "run_setup.h"
#include "video_run.h"

namespace lf::cmd {

namespace {

namespace fs = std::filesystem;

struct BatchOptions {
  std::string prompts, out_dir;
  Shard shard;
  bool no_video = false, save_latents = false, save_noise = false, save_summary = false;
  bool quiet = false, json = false;
};

cxxopts::Options batch_flags() {
  cxxopts::Options flags("lightforce batch",
                         "Generate one video per entry of a prompts file, loading the model once; resumable and "
                         "shardable (docs/batch.md).");
  flags.add_options("batch")
      ("prompts", "prompts file: one prompt a line, or JSONL {\"prompt\", \"prompt_schedule\", \"seed\", \"frames\", "
       "\"out\", \"set\"} (docs/batch.md)", cxxopts::value<std::string>())
      ("out-dir", "directory for the outputs and the manifest (created when missing)", cxxopts::value<std::string>())
      ("shard", "I/N: run only the entries whose index mod N is I (one process per GPU or machine)",
       cxxopts::value<std::string>()->default_value("0/1"));
  add_run_flags(flags, /*with_prompt=*/false);
  flags.add_options("output")
      ("no-video", "no MP4 per entry (use with --save-latents or --save-noise)")
      ("save-latents", "also write each entry's final latents, NAME.latents.safetensors")
      ("save-noise", "also write each entry's random draws, NAME.noise.safetensors (replay with generate --noise)")
      ("save-summary", "also write each entry's generate --json summary, NAME.json")
      ("fps", "video frame rate (sets output.fps)", cxxopts::value<int>());
  flags.add_options("reporting")
      ("q,quiet", "no progress on stderr (failed entries are still reported)")
      ("json", "print a JSON summary of the batch on stdout")
      ("h,help", "show this help");
  return flags;
}

// The file of each output kind an entry writes, relative to --out-dir. The manifest and resume use these names.
std::map<std::string, std::string> planned_outputs(const BatchEntry& entry, const BatchOptions& options) {
  std::map<std::string, std::string> outputs;
  if (!options.no_video) outputs["video"] = entry.name + ".mp4";
  if (options.save_latents) outputs["latents"] = entry.name + ".latents.safetensors";
  if (options.save_noise) outputs["noise"] = entry.name + ".noise.safetensors";
  if (options.save_summary) outputs["summary"] = entry.name + ".json";
  return outputs;
}

std::string manifest_file_name(const Shard& shard) {
  return shard.count == 1 ? "manifest.jsonl" : fmt::format("manifest.shard-{}-of-{}.jsonl", shard.index, shard.count);
}

// The entry's config: the batch's flags, then its default seed (batch seed + entry index), then its own seed,
// frames and overrides, so an entry's fields win over the command line.
// What the whole batch ran with: weights, model, base attention settings; "seed" is the batch seed (an entry without
// its own gets it + its index). Prompts are per entry (the manifest, NAME.json).
nlohmann::json batch_provenance(const RunFlags& flags, const RunConfig& run) {
  nlohmann::json provenance = run_provenance(flags, run);
  provenance.erase("prompt");
  provenance.erase("text_embeddings");
  return provenance;
}

RunConfig entry_config(const ConfigSources& batch_sources, uint64_t batch_seed, const BatchEntry& entry) {
  ConfigSources sources = batch_sources;
  sources.overrides.push_back(fmt::format("pipeline.seed={}", batch_seed + uint64_t(entry.index)));
  if (entry.seed) sources.overrides.push_back(fmt::format("pipeline.seed={}", *entry.seed));
  if (entry.frames) sources.overrides.push_back(fmt::format("pipeline.frames={}", *entry.frames));
  for (const std::string& assignment : entry.overrides) sources.overrides.push_back(assignment);
  return load_run_config(sources);
}

// The model section as text: an entry may change the pipeline, attention and output settings, not the loaded model.
std::string model_section(RunConfig config) {
  config.pipeline = PipelineConfig{};
  config.attention = AttentionConfig{};
  config.output = OutputConfig{};
  config.source.clear();
  return to_yaml(config);
}

// Everything that decides an entry's bytes, hashed: a rerun skips the entry only when this is unchanged.
std::string entry_key(const RunConfig& run, const BatchEntry& entry, const RunFlags& flags, Device device,
                      const std::map<std::string, std::string>& outputs) {
  const nlohmann::json key = {
      {"config", to_yaml(run)},
      {"prompt", entry.prompt},
      {"prompt_schedule", entry.prompt_schedule},
      {"outputs", outputs},
      {"weights", flags.weights},
      {"weights_root", flags.weights_root},
      {"model_dir", flags.model_files.model_dir},
      {"t5_weights", flags.model_files.t5_weights},
      {"tokenizer", flags.model_files.tokenizer},
      {"vae_weights", flags.model_files.vae},
      {"device", device == Device::CUDA ? "cuda" : "cpu"},  // the GPU's bf16 path gives other bytes than the CPU
  };
  const std::string text = key.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return sha256_hex(text.data(), text.size());
}


// An entry is complete when its last manifest line is ok with today's key and every output it lists is still
// there with the bytes it had (a file replaced or truncated since makes it run again).
bool is_complete(const ManifestLine* last, const std::string& key, const std::string& out_dir) {
  if (last == nullptr || last->status != "ok" || last->key != key) return false;
  for (const auto& [kind, path] : last->outputs) {
    const std::string file = (fs::path(out_dir) / path).string();
    std::error_code error;
    if (!fs::is_regular_file(file, error)) return false;
    const auto expected = last->sha256.find(kind);
    if (expected == last->sha256.end() || sha256_file_hex(file) != expected->second) return false;
  }
  return true;
}

// kill -9 can leave "<output>.tmp-<pid>" beside an output (never at its path). Removes those of this batch's
// outputs whose process is gone; a live pid (another shard writing into the same directory) is left alone.
int remove_stale_temporaries(const std::set<fs::path>& final_paths) {
  std::set<fs::path> folders;
  for (const fs::path& path : final_paths) folders.insert(path.parent_path());
  int removed = 0;
  for (const fs::path& folder : folders) {
    std::error_code error;
    for (const auto& item : fs::directory_iterator(folder, error)) {
      const std::string name = item.path().filename().string();
      const size_t mark = name.rfind(".tmp-");
      if (mark == std::string::npos) continue;
      const std::string pid_text = name.substr(mark + 5);
      if (pid_text.empty() || pid_text.size() > 9 || pid_text.find_first_not_of("0123456789") != std::string::npos)
        continue;
      if (!final_paths.count(folder / name.substr(0, mark))) continue;
      const pid_t pid = pid_t(std::stol(pid_text));
      if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
      std::error_code remove_error;
      removed += fs::remove(item.path(), remove_error) ? 1 : 0;
    }
  }
  return removed;
}

// Refuses an --out-dir that cannot become a directory before anything is loaded: an existing non-directory, or a
// missing one whose nearest existing parent is not a writable directory.
void check_out_dir(const std::string& out_dir) {
  LF_USAGE_CHECK(!out_dir.empty(), "no output directory: pass --out-dir DIR");
  std::error_code error;
  fs::path probe = fs::absolute(out_dir, error);
  if (fs::exists(probe, error)) {
    LF_CHECK(fs::is_directory(probe, error), "--out-dir '{}' exists and is not a directory", out_dir);
    LF_CHECK(::access(probe.c_str(), W_OK) == 0, "--out-dir '{}' is not writable", out_dir);
    return;
  }
  while (probe.has_parent_path() && probe != probe.parent_path() && !fs::exists(probe, error))
    probe = probe.parent_path();
  LF_CHECK(fs::is_directory(probe, error), "--out-dir '{}': '{}' is not a directory", out_dir, probe.string());
  LF_CHECK(::access(probe.c_str(), W_OK) == 0, "--out-dir '{}': '{}' is not writable", out_dir, probe.string());
}

// Runs one entry after another with the loaded model, encoder and decoder, and says how each went.
class EntryRunner {
 public:
  EntryRunner(const PreparedModel& prepared, VideoDecoder* decoder, const RunFlags& run_flags,
              const BatchOptions& options, uint64_t batch_seed)
      : prepared_(prepared), decoder_(decoder), run_flags_(run_flags), options_(options), batch_seed_(batch_seed),
        loaded_model_(model_section(prepared.run)) {}

  enum class Outcome { Done, Skipped };
  // Fills `line` (status ok, outputs and their sha256) or throws, leaving what was known in `line`. `previous`:
  // the entry's last manifest line, if any.
  Outcome run(const BatchEntry& entry, const ManifestLine* previous, ManifestLine& line) {
    const std::map<std::string, std::string> outputs = planned_outputs(entry, options_);
    const RunConfig run = entry_config(run_flags_.config, batch_seed_, entry);
    line.seed = run.pipeline.seed;
    line.frames = run.pipeline.frames;
    line.key = entry_key(run, entry, run_flags_, prepared_.device, outputs);
    if (is_complete(previous, line.key, options_.out_dir)) return Outcome::Skipped;
    LF_CHECK(model_section(run) == loaded_model_, "its settings change the model (a model.* key or --decoder), "
             "which batch loads once for every entry: give model settings on the command line");
    LF_CHECK(!entry.prompt.empty() || !entry.prompt_schedule.empty(), "no prompt (\"prompt\" or "
             "\"prompt_schedule\")");
    const std::vector<ContextSwitch> contexts = contexts_of(entry, run);

    auto at = [&](const char* kind) {
      const auto place = outputs.find(kind);
      return place == outputs.end() ? std::string() : (fs::path(options_.out_dir) / place->second).string();
    };
    VideoOutputs files;
    files.video = at("video");
    files.latents = at("latents");
    files.save_noise = at("noise");
    for (const auto& [kind, path] : outputs)
      fs::create_directories((fs::path(options_.out_dir) / path).parent_path());  // "out": "sub/name"
    const VideoResult video = run_video(prepared_, run, contexts, files, decoder_, /*quiet=*/true);
    if (options_.save_summary) {
      // generate's --json document for this entry: its own prompt (or schedule), seed and settings.
      RunFlags entry_flags = run_flags_;
      entry_flags.prompt = entry.prompt;
      nlohmann::json summary = versioned(video.summary, run_provenance(entry_flags, run));
      if (!entry.prompt_schedule.empty()) summary["prompt_schedule"] = entry.prompt_schedule;
      write_file_atomic(at("summary"), summary.dump(2) + "\n");
    }
    for (const auto& [kind, path] : outputs) line.sha256[kind] = sha256_file_hex(at(kind.c_str()));
    line.outputs = outputs;
    line.status = "ok";
    return Outcome::Done;
  }

 private:
  // Consecutive entries with one prompt (several seeds of a prompt) share its text context; schedules are
  // encoded each time (their chunk count may differ).
  std::vector<ContextSwitch> contexts_of(const BatchEntry& entry, const RunConfig& run) {
    const bool plain = entry.prompt_schedule.empty();
    if (plain && !memo_contexts_.empty() && entry.prompt == memo_prompt_) return memo_contexts_;
    if (!options_.quiet && prepared_.text_encoder && plain)
      for (const std::string& note : prepared_.text_encoder->notes(entry.prompt))
        fmt::print(stderr, "note: entry {}: {}\n", entry.index, note);
    std::vector<ContextSwitch> contexts = prompt_contexts(prepared_, run, entry.prompt, entry.prompt_schedule);
    memo_prompt_ = plain ? entry.prompt : std::string();
    memo_contexts_ = plain ? contexts : std::vector<ContextSwitch>{};
    return contexts;
  }

  const PreparedModel& prepared_;
  VideoDecoder* decoder_;
  const RunFlags& run_flags_;
  const BatchOptions& options_;
  uint64_t batch_seed_;
  std::string loaded_model_;
  std::string memo_prompt_;
  std::vector<ContextSwitch> memo_contexts_;
};

}  // namespace

int batch(int argc, char** argv) {
  cxxopts::Options flags = batch_flags();
  const auto result = parse_flags(flags, argc, argv);
  if (result.count("help")) {
    fmt::print("{}", flags.help());
    return 0;
  }
  RunFlags run_flags = read_run_flags(result);
  BatchOptions options;
  options.prompts = result.count("prompts") ? result["prompts"].as<std::string>() : "";
  options.out_dir = result.count("out-dir") ? result["out-dir"].as<std::string>() : "";
  options.no_video = result.count("no-video");
  options.save_latents = result.count("save-latents");
  options.save_noise = result.count("save-noise");
  options.save_summary = result.count("save-summary");
  options.quiet = result.count("quiet");
  options.json = result.count("json");
  const auto started = std::chrono::steady_clock::now();

  // Everything that can be checked without the model is checked first, so a typo costs no loading and leaves no
  // directory behind.
  LF_USAGE_CHECK(!options.prompts.empty(), "no prompts file: pass --prompts FILE");
  options.shard = parse_shard(result["shard"].as<std::string>());
  parse_device(run_flags.device);
  LF_USAGE_CHECK(!options.no_video || options.save_latents || options.save_noise,
                 "--no-video without --save-latents or --save-noise would write nothing");
  // Said once here rather than as the same failure of every entry.
  LF_CHECK(options.no_video || LF_WITH_FFMPEG, "this build has no FFmpeg, so it writes no MP4: pass --no-video with "
           "--save-latents (decode them later with lightforce decode)");
  const BatchFile file = read_batch_file(options.prompts);
  check_out_dir(options.out_dir);
  const RunConfig batch_run = load_run_config(run_flags.config);  // a bad --set fails here, before any loading

  std::vector<const BatchEntry*> share;
  for (const BatchEntry& entry : file.entries)
    if (options.shard.takes(entry.index)) share.push_back(&entry);

  PreparedModel prepared = prepare_model_for_prompts(run_flags);
  std::unique_ptr<VideoDecoder> decoder;
  if (!options.no_video) {
    decoder = make_run_decoder(prepared);
    LF_CHECK(decoder, "model '{}' has no video decoder (model.decoder: none): pass --decoder NAME ({}) or write "
             "latents with --save-latents and --no-video", prepared.run.model.name, decoder_names());
  }

  std::error_code error;
  fs::create_directories(options.out_dir, error);
  LF_CHECK(!error, "--out-dir '{}': cannot create it: {}", options.out_dir, error.message());
  const std::string manifest_path = (fs::path(options.out_dir) / manifest_file_name(options.shard)).string();
  ManifestWriter manifest(manifest_path);
  std::vector<std::string> notes;
  std::map<int64_t, ManifestLine> previous;  // the last line of each entry
  for (ManifestLine& line : read_manifest(manifest_path, &notes)) previous[line.entry] = std::move(line);
  if (!options.quiet)
    for (const std::string& note : notes) fmt::print(stderr, "note: {}\n", note);

  std::set<fs::path> final_paths;
  for (const BatchEntry* entry : share)
    for (const auto& [kind, path] : planned_outputs(*entry, options))
      final_paths.insert(fs::absolute(fs::path(options.out_dir) / path).lexically_normal());
  const int stale = remove_stale_temporaries(final_paths);
  if (!options.quiet) {
    fmt::print(stderr, "lightforce batch: {} entries in '{}', shard {} takes {}; model {} on {}; manifest {}\n",
               file.entries.size(), options.prompts, options.shard.text(), share.size(), prepared.run.model.name,
               prepared.device == Device::CUDA ? "cuda" : "cpu", manifest_path);
    if (stale > 0) fmt::print(stderr, "note: removed {} unfinished temporary file(s) of an earlier run\n", stale);
  }

  int64_t ok = 0, failed = 0, skipped = 0, position = 0;
  EntryRunner runner(prepared, decoder.get(), run_flags, options, batch_run.pipeline.seed);
  for (const BatchEntry* entry : share) {
    ++position;
    const auto entry_started = std::chrono::steady_clock::now();
    ManifestLine line;
    line.entry = entry->index;
    line.line = entry->line;
    line.name = entry->name;
    line.prompt = entry->prompt;
    line.prompt_schedule = entry->prompt_schedule;
    line.seed = entry->seed.value_or(batch_run.pipeline.seed + uint64_t(entry->index));
    line.frames = entry->frames.value_or(batch_run.pipeline.frames);
    line.shard = options.shard.text();
    line.entries = int64_t(file.entries.size());
    line.prompts_sha256 = file.sha256;
    try {
      const auto last = previous.find(entry->index);
      if (runner.run(*entry, last == previous.end() ? nullptr : &last->second, line) ==
          EntryRunner::Outcome::Skipped) {
        ++skipped;
        if (!options.quiet)
          fmt::print(stderr, "[{}/{}] entry {} '{}': complete, skipped\n", position, share.size(), entry->index,
                     entry->name);
        continue;
      }
      ++ok;
    } catch (const std::exception& problem) {
      // One bad entry (an override, a prompt, a full disk for its file) is recorded and the batch goes on.
      line.status = "failed";
      line.error = dynamic_cast<const std::bad_alloc*>(&problem) ? "out of host memory" : problem.what();
      line.outputs.clear();
      line.sha256.clear();
      ++failed;
    }
    line.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - entry_started).count();
    manifest.append(line);
    if (line.status == "failed")
      fmt::print(stderr, "lightforce batch: entry {} (line {}) failed: {}\n", entry->index, entry->line, line.error);
    else if (!options.quiet)
      fmt::print(stderr, "[{}/{}] entry {} '{}': ok, {}\n", position, share.size(), entry->index, entry->name,
                 format_seconds(line.seconds));
  }

  const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!options.quiet)
    fmt::print(stderr, "lightforce batch: {} ok, {} failed, {} skipped (complete before) in {}; manifest {}\n", ok,
               failed, skipped, format_seconds(total_seconds), manifest_path);
  if (options.json) {
    const nlohmann::json summary = versioned({
        {"entries", file.entries.size()}, {"shard", options.shard.text()}, {"in_shard", share.size()},
        {"ok", ok}, {"failed", failed}, {"skipped", skipped}, {"manifest", manifest_path},
        {"total_seconds", total_seconds},
    }, batch_provenance(run_flags, batch_run));
    fmt::print("{}\n", summary.dump(2));
  }
  return failed > 0 ? kExitSomeEntriesFailed : 0;
}

}  // namespace lf::cmd
