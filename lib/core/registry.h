#pragma once
// Lookups shared by the registries of model parts and attention backends: a registry is a vector of entries with a
// `name` field, and a name is only ever looked up here, with an error that names the config key and lists the
// known names.
#include <string>
#include <vector>

#include "core/error.h"

namespace lf {

template <typename Entry>
std::string registry_names(const std::vector<Entry>& registry) {
  std::string names;
  for (const Entry& entry : registry) names += (names.empty() ? "" : ", ") + entry.name;
  return names;
}

// `config_key` e.g. "model.decoder", `kind` e.g. "decoder".
template <typename Entry>
const Entry& registry_entry(const std::vector<Entry>& registry, const std::string& name, const char* config_key,
                            const char* kind) {
  for (const Entry& entry : registry)
    if (entry.name == name) return entry;
  fail("config key '{}': unknown {} '{}' (known: {})", config_key, kind, name, registry_names(registry));
}

}  // namespace lf
