#pragma once
// Shared by test_decoders_parity.cpp and test_gpu_conv.cpp: the fixture weights (a formula of each parameter's
// name, tools/make_vae_fixture_weights.py) and the fixture files of tests/fixtures/decoders/.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "model/weight_table.h"

namespace lf::test {

inline uint32_t fnv1a(const std::string& name) {
  uint32_t h = 2166136261u;
  for (unsigned char byte : name) h = (h ^ byte) * 16777619u;
  return h;
}

// The formula of tools/make_vae_fixture_weights.py, in the same uint32 / float64 steps.
inline void fixture_weights(const std::vector<WeightSlot>& slots, uint32_t seed) {
  for (const WeightSlot& slot : slots) {
    *slot.target = Tensor::empty(slot.shape);
    float* values = slot.target->f32();
    const int64_t count = shape_numel(slot.shape);
    const uint32_t offset = fnv1a(slot.name) * 374761393u + seed * 668265263u;
    const bool gamma = slot.name.ends_with("gamma"), bias = slot.name.ends_with("bias");
    const double bound = std::sqrt(3.0 / double(count / slot.shape[0]));
    for (int64_t i = 0; i < count; ++i) {
      uint32_t x = uint32_t(i) * 2654435761u + offset;
      x ^= x >> 15;
      x *= 2246822519u;
      x ^= x >> 13;
      x *= 3266489917u;
      x ^= x >> 16;
      const double u = double(x) / 4294967296.0;
      values[i] = float(gamma ? 1.0 + 0.5 * (u - 0.5) : bias ? 0.2 * (2.0 * u - 1.0) : (2.0 * u - 1.0) * bound);
    }
  }
}

struct Fixture {
  Tensor latents, video;
  uint32_t weight_seed;
};

inline Fixture read_fixture(const std::string& name) {
  const std::string path = std::string(LF_FIXTURES_DIR) + "/decoders/" + name + ".safetensors";
  REQUIRE_MESSAGE(std::filesystem::exists(path), "missing fixture " << path << " (tools/make_vae_fixtures.py)");
  const auto checkpoint = Checkpoint::open(path);
  return {checkpoint->view("latents").clone(), checkpoint->view("video").clone(),
          uint32_t(std::stoul(checkpoint->metadata().at("weight_seed")))};
}


}  // namespace lf::test
