// Decoder ops against naive loops (double accumulation) on fresh random inputs, and the decoders' streaming
// contract: decoding chunk by chunk gives the same bits as decoding all latents at once; frame counts; bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/taehv.h"
#include "model/wan_vae.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace lf;
using test::random_tensor;
using test::rel_l2;

namespace {

// out[t, o, y, x] = bias[o] + sum over c, dt, dy, dx of w[o, c, dt, dy, dx] * in(t + dt - (kt - 1), c, y + dy - kh/2,
// x + dx - kw/2), frames before 0 from `history`, pixels outside zero.
Tensor naive_conv3d(const Tensor& x, const Tensor& history, const Tensor& w, const Tensor& bias) {
  const int64_t frames = x.dim(0), channels = x.dim(1), height = x.dim(2), width = x.dim(3);
  const int64_t outs = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
  Tensor out = Tensor::empty({frames, outs, height, width});
  auto input = [&](int64_t t, int64_t c, int64_t y, int64_t xx) -> double {
    if (y < 0 || y >= height || xx < 0 || xx >= width) return 0.0;
    if (t < 0) return history.f32()[(((t + kt - 1) * channels + c) * height + y) * width + xx];
    return x.f32()[((t * channels + c) * height + y) * width + xx];
  };
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t o = 0; o < outs; ++o)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t xx = 0; xx < width; ++xx) {
          double sum = bias.defined() ? bias.f32()[o] : 0.0;
          for (int64_t c = 0; c < channels; ++c)
            for (int64_t dt = 0; dt < kt; ++dt)
              for (int64_t dy = 0; dy < kh; ++dy)
                for (int64_t dx = 0; dx < kw; ++dx)
                  sum += double(w.f32()[(((o * channels + c) * kt + dt) * kh + dy) * kw + dx]) *
                         input(t + dt - (kt - 1), c, y + dy - kh / 2, xx + dx - kw / 2);
          out.f32()[((t * outs + o) * height + y) * width + xx] = float(sum);
        }
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

Tensor concat_frames(const std::vector<Tensor>& pieces) {
  int64_t frames = 0;
  for (const Tensor& piece : pieces) frames += piece.dim(0);
  Shape shape = pieces.front().shape();
  shape[0] = frames;
  Tensor out = Tensor::empty(shape);
  int64_t row = 0;
  for (const Tensor& piece : pieces) {
    ops::copy_rows(out, row, piece, 0, piece.dim(0));
    row += piece.dim(0);
  }
  return out;
}

// A small Wan VAE (widths [16, 16, 16, 8, 4]) with random weights: the real graph, test-sized.
WanVaeConfig tiny_vae_config() {
  WanVaeConfig config;
  config.name = "tiny-vae";
  config.dim = 4;
  return config;
}

// Random weights with non-trivial gammas and biases (random_weight_table's are ones and zeros).
void scramble(std::vector<WeightSlot> slots, uint64_t seed) {
  random_weight_table(slots, seed);
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::string& name = slots[i].name;
    const bool gamma = name.size() >= 5 && name.compare(name.size() - 5, 5, "gamma") == 0;
    const bool bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (!gamma && !bias) continue;
    const Tensor noise = random_tensor(slots[i].shape, seed * 1000 + i, gamma ? 0.3f : 0.1f);
    float* values = slots[i].target->f32();
    for (int64_t j = 0; j < noise.numel(); ++j) values[j] = (gamma ? 1.0f : 0.0f) + noise.f32()[j];
  }
}

}  // namespace

TEST_CASE("causal_conv3d equals the direct sum, with history, at 3x3x3, 3x1x1 and 1x1x1") {
  struct Case {
    int64_t frames, channels, outs, height, width, kt, kh;
  };
  // Shapes not multiples of the pixel tile (48), the weight panel (32) or matmul's 4x3 register tile.
  for (const Case& c : {Case{3, 5, 7, 9, 11, 3, 3}, Case{2, 13, 33, 7, 8, 3, 1}, Case{4, 6, 5, 10, 5, 1, 1},
                        Case{1, 40, 3, 7, 9, 3, 3}}) {
    CAPTURE(c.channels);
    CAPTURE(c.kt);
    const Tensor x = random_tensor({c.frames, c.channels, c.height, c.width}, 1, 2.0f);
    const Tensor w = random_tensor({c.outs, c.channels, c.kt, c.kh, c.kh}, 2);
    const Tensor b = random_tensor({c.outs}, 3);
    const Tensor history = c.kt > 1 ? random_tensor({c.kt - 1, c.channels, c.height, c.width}, 4) : Tensor();
    const Tensor got = ops::causal_conv3d(x, history, w, b);
    const Tensor want = naive_conv3d(x, history, w, b);
    MESSAGE("conv rel-L2 vs double: " << rel_l2(got, want));
    // fp32 dot products of <= 1080 terms against double: measured <= 1.9e-7 rel-L2; 5x margin.
    CHECK(rel_l2(got, want) < 1e-6);
  }
}

TEST_CASE("conv epilogue: residual then ReLU, in the official order") {
  const Tensor x = random_tensor({2, 6, 5, 7}, 5), w = random_tensor({4, 6, 3, 3}, 6), b = random_tensor({4}, 7);
  const Tensor residual = random_tensor({2, 4, 5, 7}, 8);
  ops::ConvEpilogue epilogue;
  epilogue.residual = &residual;
  epilogue.relu = true;
  const Tensor got = ops::conv2d(x, w, b, epilogue);
  Tensor want = naive_conv3d(x, Tensor(), w.reshape({4, 6, 1, 3, 3}), b);
  for (int64_t i = 0; i < want.numel(); ++i) want.f32()[i] = std::max(want.f32()[i] + residual.f32()[i], 0.0f);
  CHECK(rel_l2(got, want) < 1e-6);
  int positive = 0;
  for (int64_t i = 0; i < got.numel(); ++i) positive += got.f32()[i] > 0;
  CHECK(positive > 0);
  CHECK(positive < got.numel());  // the ReLU did clip something
}

TEST_CASE("conv output does not depend on how frames are grouped into calls (the streaming invariant)") {
  const Tensor x = random_tensor({5, 9, 6, 7}, 9), w = random_tensor({11, 9, 3, 3, 3}, 10), b = random_tensor({11}, 11);
  const Tensor zeros = Tensor::zeros({2, 9, 6, 7});
  const Tensor whole = ops::causal_conv3d(x, zeros, w, b);
  // Frame by frame, carrying the last two input frames as the history.
  std::vector<Tensor> pieces;
  Tensor history = zeros;
  for (int64_t t = 0; t < 5; ++t) {
    pieces.push_back(ops::causal_conv3d(x.slice_rows(t, t + 1), history, w, b));
    Tensor next = Tensor::empty(history.shape());
    ops::copy_rows(next, 0, history, 1, 1);
    ops::copy_rows(next, 1, x, t, 1);
    history = next;
  }
  CHECK(same_bits(concat_frames(pieces), whole));
}

TEST_CASE("upsample, channel RMS norm, tanh clamp, concat") {
  const Tensor x = random_tensor({2, 5, 3, 4}, 12, 3.0f);
  const Tensor up = ops::upsample_nearest2x(x);
  CHECK(up.shape() == Shape{2, 5, 6, 8});
  bool all_equal = true;
  for (int64_t p = 0; p < 10; ++p)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t xx = 0; xx < 8; ++xx)
        all_equal = all_equal && up.f32()[(p * 6 + y) * 8 + xx] == x.f32()[(p * 3 + y / 2) * 4 + xx / 2];
  CHECK(all_equal);

  const Tensor gamma = random_tensor({5}, 13);
  for (bool silu : {false, true}) {
    const Tensor got = ops::channel_rms_norm(x, gamma, 1e-12, silu);
    Tensor want = Tensor::empty(x.shape());
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t p = 0; p < 12; ++p) {
        double norm = 0;
        for (int64_t c = 0; c < 5; ++c) norm += std::pow(double(x.f32()[(t * 5 + c) * 12 + p]), 2);
        norm = std::sqrt(norm);
        for (int64_t c = 0; c < 5; ++c) {
          double v = x.f32()[(t * 5 + c) * 12 + p] / norm * std::sqrt(5.0) * gamma.f32()[c];
          if (silu) v = v / (1 + std::exp(-v));
          want.f32()[(t * 5 + c) * 12 + p] = float(v);
        }
      }
    CHECK(rel_l2(got, want) < 1e-6);
  }
  // A zero column divides by eps, not by zero.
  const Tensor zero_norm = ops::channel_rms_norm(Tensor::zeros({1, 3, 1, 2}), random_tensor({3}, 14), 1e-12, true);
  for (int64_t i = 0; i < zero_norm.numel(); ++i) CHECK(zero_norm.f32()[i] == 0.0f);

  const Tensor clamped = ops::tanh_clamp(x, 3.0);
  for (int64_t i = 0; i < x.numel(); ++i)
    CHECK(clamped.f32()[i] == doctest::Approx(std::tanh(x.f32()[i] / 3.0) * 3.0).epsilon(1e-6));

  const Tensor a = random_tensor({2, 3, 2, 2}, 15), b = random_tensor({2, 4, 2, 2}, 16);
  const Tensor cat = ops::concat_channels(a, b);
  CHECK(cat.shape() == Shape{2, 7, 2, 2});
  CHECK(cat.f32()[(1 * 7 + 2) * 4 + 3] == a.f32()[(1 * 3 + 2) * 4 + 3]);
  CHECK(cat.f32()[(1 * 7 + 5) * 4 + 1] == b.f32()[(1 * 4 + 2) * 4 + 1]);
  CHECK_THROWS_AS(ops::concat_channels(a, random_tensor({1, 4, 2, 2}, 17)), Error);
}

TEST_CASE("spatial attention: one head over each frame's pixels, scale 1/sqrt(C)") {
  const int64_t channels = 6, height = 3, width = 5, pixels = 15;
  const Tensor qkv = random_tensor({2, 3 * channels, height, width}, 18, 2.0f);
  const Tensor got = ops::spatial_attention(qkv);
  Tensor want = Tensor::empty({2, channels, height, width});
  auto at = [&](int64_t t, int64_t part, int64_t c, int64_t p) {
    return double(qkv.f32()[((t * 3 + part) * channels + c) * pixels + p]);
  };
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t i = 0; i < pixels; ++i) {
      std::vector<double> scores(pixels);
      double top = -INFINITY, total = 0;
      for (int64_t j = 0; j < pixels; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < channels; ++c) dot += at(t, 0, c, i) * at(t, 1, c, j);
        scores[size_t(j)] = dot / std::sqrt(double(channels));
        top = std::max(top, scores[size_t(j)]);
      }
      for (double& s : scores) total += (s = std::exp(s - top));
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0;
        for (int64_t j = 0; j < pixels; ++j) sum += scores[size_t(j)] / total * at(t, 2, c, j);
        want.f32()[(t * channels + c) * pixels + i] = float(sum);
      }
    }
  CHECK(rel_l2(got, want) < 1e-6);
}

TEST_CASE("Wan VAE: streaming chunks give the same bits as one call; frame counts follow the first-frame rule") {
  for (const char* first_frame : {"official", "zero-cache"}) {
    CAPTURE(first_frame);
    WanVaeConfig config = tiny_vae_config();
    config.first_frame = first_frame;
    WanVaeDecoder decoder(config, 5, 6);
    scramble(decoder.weight_slots(), 21);
    CHECK(decoder.width() == 48);
    CHECK(decoder.height() == 40);
    const Tensor latents = random_tensor({7, 16, 5, 6}, 22, 2.0f);
    const Tensor whole = decoder.decode_frames(latents);
    CHECK(whole.shape() == Shape{1 + 4 * 6, 3, 40, 48});
    decoder.reset();
    std::vector<Tensor> pieces;
    const int64_t chunks[] = {3, 1, 3};
    int64_t first = 0;
    for (int64_t chunk = 0; chunk < 3; ++chunk) {
      const std::vector<Tensor> images = decoder.decode_chunk(latents.slice_rows(first, first + chunks[chunk]));
      CHECK(int64_t(images.size()) == decoder.frames_for_chunk(chunk, chunks[chunk]));
      for (const Tensor& image : images) pieces.push_back(image.reshape({1, 3, 40, 48}));
      first += chunks[chunk];
    }
    CHECK(same_bits(concat_frames(pieces), whole));
    // The output is a picture, not a constant: values spread inside [0, 1].
    double low = 1, high = 0;
    for (int64_t i = 0; i < whole.numel(); ++i) {
      low = std::min<double>(low, whole.f32()[i]);
      high = std::max<double>(high, whole.f32()[i]);
    }
    CHECK(low >= 0.0);
    CHECK(high <= 1.0);
    CHECK(high - low > 0.1);
  }
}

TEST_CASE("Wan VAE: the two first-frame rules agree after the first latents' reach and differ at the start") {
  WanVaeConfig official = tiny_vae_config(), zero_cache = tiny_vae_config();
  zero_cache.first_frame = "zero-cache";
  WanVaeDecoder a(official, 4, 4), b(zero_cache, 4, 4);
  scramble(a.weight_slots(), 23);
  scramble(b.weight_slots(), 23);
  const Tensor latents = random_tensor({2, 16, 4, 4}, 24);
  const Tensor va = a.decode_frames(latents), vb = b.decode_frames(latents);
  REQUIRE(va.shape() == vb.shape());
  CHECK(rel_l2(va.slice_rows(0, 1), vb.slice_rows(0, 1)) > 1e-3);
}

TEST_CASE("TAEHV: streaming equals one call; 4 frames a latent, the first 3 of the stream trimmed") {
  TaehvConfig config;
  config.widths = {12, 8, 6, 6};
  TaehvDecoder decoder(config, 3, 5);
  scramble(decoder.weight_slots(), 31);
  const Tensor latents = random_tensor({6, 16, 3, 5}, 32, 2.0f);
  const Tensor whole = decoder.decode_frames(latents);
  CHECK(whole.shape() == Shape{4 * 6 - 3, 3, 24, 40});
  decoder.reset();
  std::vector<Tensor> pieces;
  for (int64_t chunk = 0; chunk < 2; ++chunk) {
    const std::vector<Tensor> images = decoder.decode_chunk(latents.slice_rows(3 * chunk, 3 * chunk + 3));
    CHECK(int64_t(images.size()) == decoder.frames_for_chunk(chunk, 3));
    for (const Tensor& image : images) pieces.push_back(image.reshape({1, 3, 24, 40}));
  }
  CHECK(same_bits(concat_frames(pieces), whole));
}

TEST_CASE("decoders refuse wrong shapes, non-finite latents and wrong weight layouts, naming the culprit") {
  WanVaeDecoder vae(tiny_vae_config(), 4, 4);
  scramble(vae.weight_slots(), 41);
  CHECK_THROWS_WITH_AS(vae.decode_chunk(random_tensor({2, 15, 4, 4}, 42)), doctest::Contains("[-1, 16, 4, 4]"), Error);
  CHECK_THROWS_AS(vae.decode_chunk(random_tensor({2, 16, 4, 5}, 42)), Error);
  Tensor bad = random_tensor({2, 16, 4, 4}, 43);
  bad.f32()[16 * 16 + 5] = NAN;
  CHECK_THROWS_WITH_AS(vae.decode_chunk(bad), doctest::Contains("latent frame 1"), Error);
  bad.f32()[16 * 16 + 5] = INFINITY;
  CHECK_THROWS_AS(vae.decode_chunk(bad), Error);

  TaehvDecoder taehv(TaehvConfig{}, 2, 2);
  bad = random_tensor({1, 16, 2, 2}, 44);
  bad.f32()[3] = NAN;
  CHECK_THROWS_WITH_AS(taehv.decode_chunk(bad), doctest::Contains("non-finite"), Error);

  // A checkpoint whose decoder.conv1 has the wrong shape: the error names the key.
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const WeightSlot& slot : vae.weight_slots()) {
    Shape shape = slot.shape;
    if (slot.name == "decoder.conv1.weight") shape[0] += 1;
    tensors.push_back({slot.name, random_tensor(shape, 45)});
  }
  tensors.push_back({"encoder.conv1.weight", random_tensor({2, 3}, 46)});  // the encoder is ignored
  const std::string path = test::tmp_path("vae_wrong_layout.safetensors");
  write_safetensors(path, tensors, {});
  CHECK_THROWS_WITH_AS(vae.load(*Checkpoint::open(path)), doctest::Contains("decoder.conv1.weight"), Error);
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& entry) { return entry.first == "decoder.conv1.weight"; }),
                tensors.end());
  write_safetensors(path, tensors, {});
  CHECK_THROWS_WITH_AS(vae.load(*Checkpoint::open(path)), doctest::Contains("decoder.conv1.weight"), Error);
  std::filesystem::remove(path);
}

TEST_CASE("built-in decoder configs: the published widths") {
  CHECK(load_wan_vae_config("wan-vae").widths() == std::vector<int64_t>{384, 384, 384, 192, 96});
  CHECK(load_wan_vae_config("lightvae").widths() == std::vector<int64_t>{96, 96, 96, 48, 24});
  WanVaeDecoder vae(load_wan_vae_config("wan-vae"), 2, 2);
  int64_t parameters = 0;
  for (const WeightSlot& slot : vae.weight_slots()) parameters += shape_numel(slot.shape);
  // Spec 12: the decoder (with conv2) has about 73.3 M parameters.
  CHECK(parameters > 73'200'000);
  CHECK(parameters < 73'400'000);
  CHECK_THROWS_WITH_AS(load_wan_vae_config("no-such-decoder"), doctest::Contains("no-such-decoder"), Error);
}

TEST_CASE("clamp_affine: the decoders' map to [0, 1], worked values") {
  const float in[] = {-3.0f, -1.0f, -0.5f, 0.0f, 0.25f, 1.0f, 7.0f};
  Tensor x = Tensor::empty({7});
  std::copy(std::begin(in), std::end(in), x.f32());
  const Tensor wan = lf::ops::clamp_affine(x, -1.0f, 1.0f, 0.5f, 0.5f);
  const float wan_expected[] = {0.0f, 0.0f, 0.25f, 0.5f, 0.625f, 1.0f, 1.0f};
  const Tensor taehv = lf::ops::clamp_affine(x, 0.0f, 1.0f, 1.0f, 0.0f);
  const float taehv_expected[] = {0.0f, 0.0f, 0.0f, 0.0f, 0.25f, 1.0f, 1.0f};
  for (int i = 0; i < 7; ++i) {
    CAPTURE(i);
    CHECK(wan.f32()[i] == wan_expected[i]);
    CHECK(taehv.f32()[i] == taehv_expected[i]);
  }
}
