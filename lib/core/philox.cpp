#include "core/philox.h"

#include <cmath>

namespace lf {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t product = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(product >> 32);
  *lo = uint32_t(product);
}

// Uniform in the open interval (0, 1): never 0 (log) and never exactly 1.
inline double open_uniform(uint32_t bits) { return (double(bits) + 0.5) * (1.0 / 4294967296.0); }
}  // namespace

void philox4x32(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c0, &hi0, &lo0);
    mulhilo(kMul1, c2, &hi1, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

float philox_normal(const PhiloxKey& key, uint64_t element) {
  // One Philox call yields four uniforms = two Box-Muller pairs = four normals (elements 4g .. 4g+3).
  const uint64_t group = element >> 2;
  const uint32_t counter[4] = {uint32_t(group), uint32_t(group >> 32), key.stream, key.step};
  const uint32_t seed_words[2] = {uint32_t(key.seed), uint32_t(key.seed >> 32)};
  uint32_t bits[4];
  philox4x32(counter, seed_words, bits);
  const int lane = int(element & 3);
  const int pair = lane >> 1;
  const double radius = std::sqrt(-2.0 * std::log(open_uniform(bits[2 * pair])));
  const double angle = 2.0 * M_PI * open_uniform(bits[2 * pair + 1]);
  return float((lane & 1) ? radius * std::sin(angle) : radius * std::cos(angle));
}

void fill_normal(Tensor& out, const PhiloxKey& key) {
  float* data = out.f32();
  const int64_t count = out.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) data[i] = philox_normal(key, uint64_t(i));
}

}  // namespace lf
