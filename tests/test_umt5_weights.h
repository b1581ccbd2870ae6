#pragma once
// Weights derived from a seed exactly as tools/make_umt5_parity_fixture.py derives them (splitmix64), so that
// fixtures at the full umT5-XXL width need not store their 386 M weights.
#include <cmath>
#include <cstdint>

#include "model/umt5_encoder.h"

namespace lf::test {

// The fixture maker's derived weights (tools/make_umt5_parity_fixture.py splitmix_uniform), bit for bit.
inline Tensor splitmix_uniform(uint64_t seed, uint64_t tensor_index, const Shape& shape, float scale) {
  Tensor out = Tensor::empty(shape);
  const uint64_t base = seed * 0x9E3779B97F4A7C15ull + tensor_index * 0xD1B54A32D192ED03ull;
  float* data = out.f32();
  const int64_t count = out.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    uint64_t z = base + uint64_t(i);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    data[i] = float(int64_t(z >> 40) - (1 << 23)) / float(1 << 23) * scale;
  }
  return out;
}

inline lf::Umt5Weights seeded_weights(const lf::Umt5Config& config, uint64_t seed) {
  lf::Umt5Weights weights;
  const std::vector<lf::WeightSlot> slots = lf::umt5_weight_slots(config, weights);
  for (size_t index = 0; index < slots.size(); ++index) {
    const lf::WeightSlot& slot = slots[index];
    const std::string& name = slot.name;
    Tensor value;
    if (slot.shape.size() == 1) {  // norms: 1 + U * 0.2
      value = splitmix_uniform(seed, index, slot.shape, 0.2f);
      for (int64_t i = 0; i < value.numel(); ++i) value.f32()[i] = 1.0f + value.f32()[i];
    } else if (name == "token_embedding.weight") {
      value = splitmix_uniform(seed, index, slot.shape, 1.0f);
    } else if (name.find("pos_embedding") != std::string::npos) {
      value = splitmix_uniform(seed, index, slot.shape, 2.0f);
    } else {
      // q at a quarter scale (see the fixture maker: T5's q absorbs the missing 1/sqrt(d)).
      const double quarter = name.size() >= 13 && name.compare(name.size() - 13, 13, "attn.q.weight") == 0 ? 0.25 : 1.0;
      value = splitmix_uniform(seed, index, slot.shape, float(std::sqrt(3.0 / double(slot.shape[1])) * quarter));
    }
    *slot.target = value.to(DType::BF16);  // the fixture's weights are bf16-rounded; the engine keeps them bf16
  }
  return weights;
}

}  // namespace lf::test
