#include "reference_run.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "core/digest.h"
#include "core/embedded.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "machine_output.h"
#include "ops/ops.h"

namespace lf::cmd {

namespace {

constexpr const char* kDescriptionFile = "reference.json";
constexpr const char* kDataFile = "run.safetensors";
constexpr const char* kKind = "lightforce-reference";

std::string in_dir(const std::string& dir, const char* file) { return (std::filesystem::path(dir) / file).string(); }

void flatten(const nlohmann::json& value, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) flatten(child, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  out[prefix] = value.is_string() ? value.get<std::string>() : value.dump();
}

}  // namespace

std::map<std::string, std::string> reference_identity(const RunFlags& flags, const RunConfig& run) {
  nlohmann::json config = config_json(run);
  // The backend is what a gate compares; the MP4 settings do not touch frames or latents.
  config.erase("attention");
  config.erase("output");
  std::map<std::string, std::string> identity;
  flatten(config, "", identity);
  identity["prompt"] = flags.prompt;
  identity["text_embeddings_sha256"] = flags.text_embeddings.empty() ? "" : sha256_file_hex(flags.text_embeddings);
  identity["weights"] = weights_identity(flags, run.model);
  return identity;
}

void check_reference_output(const std::string& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  LF_CHECK(!error, "--save-reference '{}': cannot create it: {}", dir, error.message());
  check_output_writable(in_dir(dir, kDescriptionFile), "--save-reference");
  check_output_writable(in_dir(dir, kDataFile), "--save-reference");
}

nlohmann::json save_reference(const std::string& dir, const RunFlags& flags, const PreparedModel& prepared,
                              const BackendRun& run) {
  LF_CHECK(!run.frames.empty(), "--save-reference: the run has no frames");
  const int64_t height = run.frames.front().height, width = run.frames.front().width;
  Tensor frames = Tensor::empty({int64_t(run.frames.size()), height, width, 3}, DType::U8);
  for (size_t i = 0; i < run.frames.size(); ++i)
    std::memcpy(static_cast<uint8_t*>(frames.raw()) + i * size_t(height * width * 3), run.frames[i].rgb.data(),
                run.frames[i].rgb.size());
  const Tensor latents = run.latents.is_cuda() ? run.latents.to(Device::CPU) : run.latents;
  // The description goes last: a reference.json beside an older run.safetensors cannot happen, because a killed
  // save leaves the previous reference.json naming the previous data's digest, which the load checks.
  write_safetensors(in_dir(dir, kDataFile), {{"frames", frames}, {"latents", latents}}, {{"format", kKind}});
  const nlohmann::json description = versioned(
      {{"kind", kKind},
       {"version", kVersion},
       {"commit", kGitCommit},
       {"device", prepared.device == Device::CUDA ? ops::cuda_device_name() : "cpu"},
       {"identity", reference_identity(flags, prepared.run)},
       {"config", config_json(prepared.run)},
       {"attention", prepared.run.attention.backend},
       {"frames_per_chunk", run.frames_per_chunk},
       {"video_frames", run.frames.size()},
       {"width", width},
       {"height", height},
       {"seconds", run.seconds},
       {"data_sha256", sha256_file_hex(in_dir(dir, kDataFile))}},
      run_provenance(flags, prepared.run));
  write_file_atomic(in_dir(dir, kDescriptionFile), description.dump(2) + "\n");
  return description;
}

nlohmann::json read_reference_description(const std::string& dir,
                                          const std::map<std::string, std::string>& identity) {
  const std::string path = in_dir(dir, kDescriptionFile);
  LF_CHECK(std::filesystem::is_regular_file(path), "--reference '{}': no {} there (make a reference with "
           "compare-dense --save-reference DIR)", dir, kDescriptionFile);
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  nlohmann::json description;
  try {
    description = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& error) {
    fail("--reference '{}': {} is not valid JSON ({})", dir, kDescriptionFile, error.what());
  }
  LF_CHECK(description.is_object() && description.value("kind", "") == kKind,
           "--reference '{}': {} is not a lightforce reference (no \"kind\": \"{}\")", dir, kDescriptionFile, kKind);
  LF_CHECK(description.value("schema_version", 0) == kJsonSchemaVersion,
           "--reference '{}': schema_version {} (this build reads {}): remake it with --save-reference", dir,
           description.value("schema_version", 0), kJsonSchemaVersion);
  std::map<std::string, std::string> saved;
  try {
    saved = description.at("identity").get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception&) {
    fail("--reference '{}': {} has no \"identity\" object of strings", dir, kDescriptionFile);
  }
  auto shown = [](const std::map<std::string, std::string>& map, const std::string& key) {
    const auto found = map.find(key);
    return found == map.end() ? std::string("(absent)") : "'" + found->second + "'";
  };
  // The settings a user changes on purpose are named first (a different model differs in a dozen keys; "model.name"
  // says more than the alphabetically first of them), then every other key.
  std::vector<std::string> keys = {"model.name", "weights", "prompt", "text_embeddings_sha256", "pipeline.seed",
                                   "pipeline.frames", "model.latent_height", "model.latent_width"};
  for (const std::map<std::string, std::string>* map : {&std::as_const(saved), &identity})
    for (const auto& [key, ignored] : *map) keys.push_back(key);
  for (const std::string& key : keys)
    LF_CHECK(shown(saved, key) == shown(identity, key),
             "--reference '{}' was made with {} {}, this run has {}: a reference is compared only with a run of the "
             "same model, weights, prompt, seed, frames and resolution", dir, key, shown(saved, key),
             shown(identity, key));
  return description;
}

SavedReference load_reference(const std::string& dir, const nlohmann::json& description) {
  const std::string path = in_dir(dir, kDataFile);
  LF_CHECK(sha256_file_hex(path) == description.value("data_sha256", ""),
           "--reference '{}': {} does not match the digest in {} (a save was interrupted, or the file was replaced)",
           dir, kDataFile, kDescriptionFile);
  const auto file = Checkpoint::open(path);
  LF_CHECK(file->contains("frames") && file->contains("latents"), "--reference '{}': {} lacks 'frames' or 'latents'",
           dir, kDataFile);
  const Tensor frames = file->view("frames");
  LF_CHECK(frames.dtype() == DType::U8 && frames.rank() == 4 && frames.dim(3) == 3 && frames.dim(0) > 0,
           "--reference '{}': 'frames' must be u8 [F, H, W, 3]", dir);
  SavedReference reference;
  reference.dir = dir;
  reference.description = description;
  const size_t frame_bytes = size_t(frames.dim(1) * frames.dim(2) * 3);
  for (int64_t i = 0; i < frames.dim(0); ++i) {
    Frame frame;
    frame.height = int(frames.dim(1));
    frame.width = int(frames.dim(2));
    const uint8_t* start = static_cast<const uint8_t*>(frames.raw()) + size_t(i) * frame_bytes;
    frame.rgb.assign(start, start + frame_bytes);
    reference.run.frames.push_back(std::move(frame));
  }
  reference.run.latents = file->view("latents").clone();
  reference.run.frames_per_chunk = description.value("frames_per_chunk", std::vector<int64_t>{});
  reference.run.seconds = 0;  // measured on another machine or commit: no speedup against it
  return reference;
}

}  // namespace lf::cmd
