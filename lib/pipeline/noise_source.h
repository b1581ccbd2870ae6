#pragma once
// Every random draw of a generation, addressable by name so that other implementations can be fed the same
// numbers: `noise_initial` [F, C, H, W] and `renoise_c{chunk}_s{step}` [chunk_frames, C, H, W] (step from 1).
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace lf {

class Checkpoint;

class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // The initial noise of the chunk's frames [chunk_frames, C, H, W].
  virtual Tensor initial(int64_t chunk) = 0;
  // The fresh noise drawn before denoising step `step` (>= 1) of `chunk`.
  virtual Tensor renoise(int64_t chunk, int64_t step) = 0;
};

struct NoiseShape {
  int64_t frames;        // latent frames of the whole video
  int64_t chunk_frames;
  int64_t channels, height, width;
};

// Philox keyed by (seed, chunk, step, element): a chunk's noise does not depend on the video length.
std::unique_ptr<NoiseSource> make_philox_noise(uint64_t seed, const NoiseShape& shape);
// Reads every draw from a safetensors file in the layout above; shapes are checked against `shape`.
std::unique_ptr<NoiseSource> make_file_noise(const std::string& path, const NoiseShape& shape);

// Wraps a source and keeps every draw, to be written with save().
class RecordingNoise final : public NoiseSource {
 public:
  RecordingNoise(std::unique_ptr<NoiseSource> inner, const NoiseShape& shape);
  Tensor initial(int64_t chunk) override;
  Tensor renoise(int64_t chunk, int64_t step) override;
  void save(const std::string& path) const;

 private:
  std::unique_ptr<NoiseSource> inner_;
  NoiseShape shape_;
  Tensor initial_all_;
  std::map<std::string, Tensor> renoise_;
};

std::string renoise_name(int64_t chunk, int64_t step);

}  // namespace lf
