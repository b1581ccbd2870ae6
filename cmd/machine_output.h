#pragma once
// What every --json document (and every JSON file a command writes) shares: the schema version a script checks
// before reading further, and the provenance of the run (prompt, weights, attention settings, seed) so a document
// found later says what made it. docs/json.md describes each document.
#include <nlohmann/json.hpp>

#include <string>

#include "config/config.h"

namespace lf::cmd {

// Bumped when a field of any document changes meaning or is removed (adding a field keeps it).
constexpr int kJsonSchemaVersion = 1;

struct RunFlags;

// The merged config as JSON (numbers as numbers, booleans as booleans), from to_yaml: one serialisation to keep
// in step with the config structs, not two.
nlohmann::json config_json(const RunConfig& run);
// Which weights a run used, comparable across machines: "random", "NAME (built in)", or a checkpoint's file
// name and size in bytes (the directory differs between a laptop and a CI runner; the size rarely survives an
// edit).
std::string weights_identity(const RunFlags& flags, const ModelConfig& model);
// {"prompt", "text_embeddings", "weights", "model", "seed", "latent_frames", "attention_settings": {backend and
// every attention.* key}}: merged into the top level of a document (keys already there win).
nlohmann::json run_provenance(const RunFlags& flags, const RunConfig& run);
// `document` with "schema_version" and `provenance`'s keys added where the document has none. (nlohmann::json
// sorts keys, so a reader finds schema_version by name, not by place.)
nlohmann::json versioned(nlohmann::json document, const nlohmann::json& provenance = nlohmann::json::object());

}  // namespace lf::cmd
