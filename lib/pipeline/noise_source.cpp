#include "pipeline/noise_source.h"

#include <cstring>

#include "core/error.h"
#include "core/philox.h"
#include "io/checkpoint.h"
#include "io/non_finite.h"
#include "io/safetensors.h"

namespace lf {

namespace {

Shape chunk_shape(const NoiseShape& shape) { return {shape.chunk_frames, shape.channels, shape.height, shape.width}; }

class PhiloxNoise final : public NoiseSource {
 public:
  PhiloxNoise(uint64_t seed, const NoiseShape& shape) : seed_(seed), shape_(shape) {}
  Tensor initial(int64_t chunk) override { return draw(chunk, 0); }
  Tensor renoise(int64_t chunk, int64_t step) override { return draw(chunk, step); }

 private:
  Tensor draw(int64_t chunk, int64_t step) {
    Tensor out = Tensor::empty(chunk_shape(shape_));
    fill_normal(out, {seed_, uint32_t(chunk), uint32_t(step)});
    return out;
  }
  uint64_t seed_;
  NoiseShape shape_;
};

class FileNoise final : public NoiseSource {
 public:
  FileNoise(const std::string& path, const NoiseShape& shape) : shape_(shape), file_(Checkpoint::open(path)) {
    LF_CHECK(file_->contains("noise_initial"), "noise file '{}': missing tensor 'noise_initial'", path);
    const Tensor initial = file_->view("noise_initial");
    const Shape expected{shape.frames, shape.channels, shape.height, shape.width};
    LF_CHECK(initial.shape() == expected, "noise file '{}': 'noise_initial' has shape {}, expected {}", path,
             shape_str(initial.shape()), shape_str(expected));
    LF_CHECK(dtype_is_float(initial.dtype()), "noise file '{}': 'noise_initial' has dtype {}, expected a float type",
             path, dtype_name(initial.dtype()));
    check_finite(initial, "noise file '" + path + "': tensor 'noise_initial'");
    initial_ = initial.to(DType::F32);
  }
  Tensor initial(int64_t chunk) override {
    return initial_.slice_rows(chunk * shape_.chunk_frames, (chunk + 1) * shape_.chunk_frames).clone();
  }
  Tensor renoise(int64_t chunk, int64_t step) override {
    const std::string name = renoise_name(chunk, step);
    LF_CHECK(file_->contains(name), "noise file '{}': missing tensor '{}'", file_->path(), name);
    const Tensor draw = file_->view(name);
    LF_CHECK(draw.shape() == chunk_shape(shape_), "noise file '{}': '{}' has shape {}, expected {}", file_->path(),
             name, shape_str(draw.shape()), shape_str(chunk_shape(shape_)));
    LF_CHECK(dtype_is_float(draw.dtype()), "noise file '{}': '{}' has dtype {}, expected a float type", file_->path(),
             name, dtype_name(draw.dtype()));
    check_finite(draw, "noise file '" + file_->path() + "': tensor '" + name + "'");
    return draw.to(DType::F32);
  }

 private:
  NoiseShape shape_;
  std::unique_ptr<Checkpoint> file_;
  Tensor initial_;
};

}  // namespace

std::string renoise_name(int64_t chunk, int64_t step) {
  return "renoise_c" + std::to_string(chunk) + "_s" + std::to_string(step);
}

std::unique_ptr<NoiseSource> make_philox_noise(uint64_t seed, const NoiseShape& shape) {
  return std::make_unique<PhiloxNoise>(seed, shape);
}

std::unique_ptr<NoiseSource> make_file_noise(const std::string& path, const NoiseShape& shape) {
  return std::make_unique<FileNoise>(path, shape);
}

RecordingNoise::RecordingNoise(std::unique_ptr<NoiseSource> inner, const NoiseShape& shape)
    : inner_(std::move(inner)), shape_(shape) {
  initial_all_ = Tensor::zeros({shape.frames, shape.channels, shape.height, shape.width});
}

Tensor RecordingNoise::initial(int64_t chunk) {
  Tensor draw = inner_->initial(chunk);
  Tensor slot = initial_all_.slice_rows(chunk * shape_.chunk_frames, (chunk + 1) * shape_.chunk_frames);
  std::memcpy(slot.raw(), draw.raw(), draw.nbytes());
  return draw;
}

Tensor RecordingNoise::renoise(int64_t chunk, int64_t step) {
  Tensor draw = inner_->renoise(chunk, step);
  renoise_[renoise_name(chunk, step)] = draw;
  return draw;
}

void RecordingNoise::save(const std::string& path) const {
  std::vector<std::pair<std::string, Tensor>> tensors{{"noise_initial", initial_all_}};
  for (const auto& [name, tensor] : renoise_) tensors.emplace_back(name, tensor);
  write_safetensors(path, tensors, {{"format", "lightforce-noise"}});
}

}  // namespace lf
