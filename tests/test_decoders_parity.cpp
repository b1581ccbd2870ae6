// Parity with the official decoders: tests/fixtures/decoders/*.safetensors hold latents and the video the official
// PyTorch code (fp32, CPU) made from them, with weights given by a formula of each parameter's name
// (tools/make_vae_fixture_weights.py), recomputed here. Made by tools/make_vae_fixtures.py and
// tools/make_taehv_fixtures.py. A missing fixture is a failure, not a skip.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "io/checkpoint.h"
#include "model/taehv.h"
#include "model/wan_vae.h"
#include "ops/ops.h"
#include "test_decoders_fixture.h"
#include "test_util.h"

using namespace lf;
using test::Fixture;
using test::fixture_weights;
using test::read_fixture;
using test::rel_l2;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) worst = std::max(worst, double(std::fabs(a.f32()[i] - b.f32()[i])));
  return worst;
}

// fp32 against fp32 in another summation order: measured rel-L2 (printed) 0.85e-6 .. 1.3e-6; the bound 1e-5.
constexpr double kParityRelL2 = 1e-5;

void check_wan(const std::string& fixture_name, WanVaeConfig config) {
  const Fixture fixture = read_fixture(fixture_name);
  WanVaeDecoder decoder(config, fixture.latents.dim(2), fixture.latents.dim(3));
  fixture_weights(decoder.weight_slots(), fixture.weight_seed);
  const Tensor whole = decoder.decode_frames(fixture.latents);
  REQUIRE(whole.shape() == fixture.video.shape());
  const double error = rel_l2(whole, fixture.video);
  MESSAGE(fixture_name << ": rel-L2 " << error << ", max |diff| " << max_abs_diff(whole, fixture.video));
  CHECK(error <= kParityRelL2);
  // Streaming (chunks of 1, then 2, then the rest) gives the same video as one call: the same bits.
  decoder.reset();
  Tensor streamed = Tensor::empty(whole.shape());
  int64_t frame = 0, latent = 0, chunk = 0;
  for (int64_t size : {int64_t(1), int64_t(2), fixture.latents.dim(0)}) {
    const int64_t end = std::min(latent + size, fixture.latents.dim(0));
    if (end <= latent) break;
    const Tensor part = decoder.decode_frames(fixture.latents.slice_rows(latent, end));
    CHECK(part.dim(0) == decoder.frames_for_chunk(chunk++, end - latent));
    ops::copy_rows(streamed, frame, part, 0, part.dim(0));
    frame += part.dim(0);
    latent = end;
  }
  REQUIRE(frame == whole.dim(0));
  CHECK(std::memcmp(streamed.raw(), whole.raw(), whole.nbytes()) == 0);
}

}  // namespace

TEST_CASE("LightVAE (Wan graph, widths [96, 96, 96, 48, 24]) matches the official decode in fp32") {
  check_wan("lightvae_6x5", load_wan_vae_config("lightvae"));
}

TEST_CASE("Wan VAE at the real widths matches the official decode in fp32") {
  check_wan("wan_vae_real_3x4", load_wan_vae_config("wan-vae"));
}

TEST_CASE("TAEHV matches the official decode_video in fp32, streamed or not") {
  const Fixture fixture = read_fixture("taehv_4x5");
  TaehvDecoder decoder(TaehvConfig{}, fixture.latents.dim(2), fixture.latents.dim(3));
  fixture_weights(decoder.weight_slots(), fixture.weight_seed);
  const Tensor whole = decoder.decode_frames(fixture.latents);
  REQUIRE(whole.shape() == fixture.video.shape());
  const double error = rel_l2(whole, fixture.video);
  MESSAGE("taehv_4x5: rel-L2 " << error << ", max |diff| " << max_abs_diff(whole, fixture.video));
  CHECK(error <= kParityRelL2);
  decoder.reset();
  const Tensor first = decoder.decode_frames(fixture.latents.slice_rows(0, 1));
  const Tensor rest = decoder.decode_frames(fixture.latents.slice_rows(1, fixture.latents.dim(0)));
  REQUIRE(first.dim(0) + rest.dim(0) == whole.dim(0));
  CHECK(std::memcmp(first.raw(), whole.raw(), first.nbytes()) == 0);
  CHECK(std::memcmp(rest.raw(), whole.f32() + first.numel(), rest.nbytes()) == 0);
}

TEST_CASE("first_frame: zero-cache matches the official decoder run with the Self-Forcing demo's zero caches") {
  WanVaeConfig config = load_wan_vae_config("lightvae");
  config.first_frame = "zero-cache";
  check_wan("lightvae_zero_cache_4x5", config);
}
