#pragma once
// The text-encoder stage of `lightforce bench` (cmd/bench.cpp).
#include <nlohmann/json.hpp>

#include <string>

#include "core/tensor.h"

namespace lf::cmd {

struct TextEncoderBench {
  std::string encoder = "umt5-xxl";  // built-in name or YAML of the encoder's size
  int64_t tokens = 512;
  int64_t repeat = 10;
  bool fp8 = false;
};

// Random weights, resident on `device`; returns the JSON row (median encode ms, per-op-class ms, load time, GB/s).
nlohmann::json bench_text_encoder(const TextEncoderBench& bench, Device device, bool quiet);

}  // namespace lf::cmd
