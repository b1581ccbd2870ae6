#pragma once
// A saved run for CI gates. `compare-dense --save-reference DIR` runs the chosen backend once and keeps its frames
// and latents with the settings that made them; `compare-dense --reference DIR` regenerates with the same settings
// (any backend) and compares against the saved run instead of recomputing dense. A reference made with other
// settings (model, weights, prompt, seed, frames, resolution, pipeline) is refused before any work, naming the
// first setting that differs. Layout: DIR/reference.json (written last: its presence means complete) and
// DIR/run.safetensors (frames u8 [F, H, W, 3], latents f32 [F, C, H, W]).
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "backend_run.h"
#include "run_setup.h"

namespace lf::cmd {

// The settings that decide a run's bytes apart from its attention backend, flattened to "section.key" -> value
// text: every config key except attention.* and output.*, the prompt (or the embeddings' sha256) and the weights.
std::map<std::string, std::string> reference_identity(const RunFlags& flags, const RunConfig& run);

// Checks DIR can take a reference (created when missing; reference.json / run.safetensors writable).
void check_reference_output(const std::string& dir);
// Returns the description written (reference.json).
nlohmann::json save_reference(const std::string& dir, const RunFlags& flags, const PreparedModel& prepared,
                              const BackendRun& run);

struct SavedReference {
  std::string dir;
  nlohmann::json description;  // reference.json
  BackendRun run;              // frames, latents, frames_per_chunk (seconds unknown: 0)
};
// Reads DIR/reference.json and refuses it unless its identity equals `identity` (one line naming the first
// differing setting, both values). Cheap: call it before loading the model.
nlohmann::json read_reference_description(const std::string& dir, const std::map<std::string, std::string>& identity);
// The saved frames and latents (after read_reference_description accepted DIR).
SavedReference load_reference(const std::string& dir, const nlohmann::json& description);

}  // namespace lf::cmd
