#pragma once
// Weights compiled into the lightforce binary, so that the default model runs with nothing on disk.
#include <cstdint>
#include <span>
#include <string>

namespace lf::cmd {

// The bytes of the shipped weights file named `file_name` (e.g. "testbed.safetensors"), or an empty span.
std::span<const uint8_t> find_embedded_weights(const std::string& file_name);

}  // namespace lf::cmd
