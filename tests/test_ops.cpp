// Every CPU op against a naive, obviously-correct formula on fresh random inputs, at shapes that are not
// multiples of any tile size.
#include <doctest/doctest.h>

#include <omp.h>

#include <cmath>
#include <complex>
#include <cstring>
#include <vector>

#include "ops/ops.h"
#include "core/error.h"
#include "test_util.h"

using namespace lf;
using test::random_tensor;
using test::rel_l2;

TEST_CASE("linear equals the triple loop") {
  for (auto [n, k, o] : {std::tuple{13, 37, 10}, std::tuple{64, 128, 96}, std::tuple{1, 5, 1}}) {
    Tensor x = random_tensor({n, k}, 1), w = random_tensor({o, k}, 2), b = random_tensor({o}, 3);
    Tensor y = ops::linear(x, w, b);
    Tensor ref = Tensor::empty({n, o});
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < o; ++j) {
        double sum = b.f32()[j];
        for (int l = 0; l < k; ++l) sum += double(x.f32()[i * k + l]) * w.f32()[j * k + l];
        ref.f32()[i * o + j] = float(sum);
      }
    CHECK(rel_l2(y, ref) < 1e-6);
    CHECK(rel_l2(ops::linear(x, w, Tensor()), ref) > 1e-3);  // the bias matters: the check can fail
  }
  CHECK_THROWS_AS(ops::linear(random_tensor({3, 4}, 1), random_tensor({5, 6}, 2), Tensor()), Error);
}

TEST_CASE("layer norm and rms norm equal their definitions") {
  Tensor x = random_tensor({7, 45}, 4, 3.0f), w = random_tensor({45}, 5), b = random_tensor({45}, 6);
  Tensor ln = ops::layer_norm(x, w, b, 1e-6), ln_plain = ops::layer_norm(x, Tensor(), Tensor(), 1e-6);
  Tensor rms = ops::rms_norm(x, w, 1e-6);
  Tensor ref_ln = Tensor::empty(x.shape()), ref_plain = Tensor::empty(x.shape()), ref_rms = Tensor::empty(x.shape());
  for (int r = 0; r < 7; ++r) {
    const float* row = x.f32() + r * 45;
    float mean = 0, var = 0, sq = 0;
    for (int i = 0; i < 45; ++i) mean += row[i] / 45;
    for (int i = 0; i < 45; ++i) var += (row[i] - mean) * (row[i] - mean) / 45, sq += row[i] * row[i] / 45;
    for (int i = 0; i < 45; ++i) {
      ref_plain.f32()[r * 45 + i] = (row[i] - mean) / std::sqrt(var + 1e-6f);
      ref_ln.f32()[r * 45 + i] = ref_plain.f32()[r * 45 + i] * w.f32()[i] + b.f32()[i];
      ref_rms.f32()[r * 45 + i] = row[i] / std::sqrt(sq + 1e-6f) * w.f32()[i];
    }
  }
  CHECK(rel_l2(ln, ref_ln) < 1e-5);
  CHECK(rel_l2(ln_plain, ref_plain) < 1e-5);
  CHECK(rel_l2(rms, ref_rms) < 1e-5);
}

TEST_CASE("activations, modulation and gating") {
  Tensor x = random_tensor({10, 6}, 7, 4.0f);
  Tensor gelu = ops::gelu_tanh(x), act = ops::silu(x);
  for (int i = 0; i < 60; ++i) {
    const double v = x.f32()[i];
    CHECK(gelu.f32()[i] == doctest::Approx(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))))
                               .epsilon(1e-5));
    CHECK(act.f32()[i] == doctest::Approx(v / (1 + std::exp(-v))).epsilon(1e-5));
  }
  // 10 tokens at 4 tokens a frame: frames 0, 0, 0, 0, 1, 1, 1, 1, 2, 2.
  Tensor shift = random_tensor({3, 6}, 8), scale = random_tensor({3, 6}, 9), gate = random_tensor({3, 6}, 10);
  Tensor mod = ops::modulate(x, shift, scale, 4);
  Tensor gated = x.clone();
  ops::gated_add(gated, mod, gate, 4);
  for (int t = 0; t < 10; ++t)
    for (int i = 0; i < 6; ++i) {
      const int f = t / 4;
      const float expect = x.f32()[t * 6 + i] * (1 + scale.f32()[f * 6 + i]) + shift.f32()[f * 6 + i];
      CHECK(mod.f32()[t * 6 + i] == doctest::Approx(expect));
      CHECK(gated.f32()[t * 6 + i] == doctest::Approx(x.f32()[t * 6 + i] + gate.f32()[f * 6 + i] * expect));
    }
}

TEST_CASE("attention equals softmax(q k^T scale) v") {
  for (auto [lq, lk, heads, dim] : {std::tuple{11, 29, 3, 20}, std::tuple{17, 17, 2, 64}}) {
    Tensor q = random_tensor({lq, heads, dim}, 11, 2.0f), k = random_tensor({lk, heads, dim}, 12, 2.0f);
    Tensor v = random_tensor({lk, heads, dim}, 13);
    const double scale = 1.0 / std::sqrt(double(dim));
    Tensor out = ops::attention(q, k, v, scale);
    Tensor ref = Tensor::empty(q.shape());
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < lq; ++i) {
        std::vector<double> p(static_cast<size_t>(lk));
        double total = 0;
        for (int j = 0; j < lk; ++j) {
          double s = 0;
          for (int d = 0; d < dim; ++d) s += double(q.f32()[(i * heads + h) * dim + d]) * k.f32()[(j * heads + h) * dim + d];
          p[size_t(j)] = std::exp(s * scale);
          total += p[size_t(j)];
        }
        for (int d = 0; d < dim; ++d) {
          double acc = 0;
          for (int j = 0; j < lk; ++j) acc += p[size_t(j)] * v.f32()[(j * heads + h) * dim + d];
          ref.f32()[(i * heads + h) * dim + d] = float(acc / total);
        }
      }
    CHECK(rel_l2(out, ref) < 1e-5);
  }
}

namespace {
// softmax(q k^T scale) v per head, every step in double; the result rounded once to f32.
Tensor attention_in_double(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const int64_t lq = q.dim(0), heads = q.dim(1), dim = q.dim(2), lk = k.dim(0);
  Tensor out = Tensor::empty(q.shape());
  std::vector<double> p(static_cast<size_t>(lk));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < lq; ++i) {
      double max_score = -INFINITY;
      for (int64_t j = 0; j < lk; ++j) {
        double s = 0;
        for (int64_t d = 0; d < dim; ++d)
          s += double(q.f32()[(i * heads + h) * dim + d]) * k.f32()[(j * heads + h) * dim + d];
        p[size_t(j)] = s * scale;
        max_score = std::max(max_score, p[size_t(j)]);
      }
      double total = 0;
      for (int64_t j = 0; j < lk; ++j) total += p[size_t(j)] = std::exp(p[size_t(j)] - max_score);
      for (int64_t d = 0; d < dim; ++d) {
        double acc = 0;
        for (int64_t j = 0; j < lk; ++j) acc += p[size_t(j)] * v.f32()[(j * heads + h) * dim + d];
        out.f32()[(i * heads + h) * dim + d] = float(acc / total);
      }
    }
  return out;
}
}  // namespace

TEST_CASE("attention is within 1e-6 of double precision at ragged, multi-chunk shapes, deterministically") {
  // Lq and Lk multiples of no tile, key chunk or vector width; Lk spans several key chunks (the online softmax
  // rescales) and a peaked softmax (q scale 4) moves the running maximum often.
  for (auto [lq, lk, heads, dim] : {std::tuple{37, 301, 3, 64}, std::tuple{45, 531, 2, 128}, std::tuple{70, 257, 2, 64},
                                    std::tuple{3, 5, 1, 128}}) {
    CAPTURE(lq);
    CAPTURE(lk);
    CAPTURE(dim);
    Tensor q = random_tensor({lq, heads, dim}, 21, 4.0f), k = random_tensor({lk, heads, dim}, 22, 2.0f);
    Tensor v = random_tensor({lk, heads, dim}, 23);
    const double scale = 1.0 / std::sqrt(double(dim));
    const Tensor out = ops::attention(q, k, v, scale), ref = attention_in_double(q, k, v, scale);
    CHECK(rel_l2(out, ref) < 1e-6);
    // Bit-identical on a rerun and on one thread: each output has one owner and a fixed summation order.
    CHECK(std::memcmp(ops::attention(q, k, v, scale).f32(), out.f32(), size_t(out.nbytes())) == 0);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Tensor single = ops::attention(q, k, v, scale);
    omp_set_num_threads(threads);
    CHECK(std::memcmp(single.f32(), out.f32(), size_t(out.nbytes())) == 0);
    // A NaN in one query reaches that query's output instead of vanishing in the max or the exp, and fails the check.
    Tensor q_nan = q.clone();
    q_nan.f32()[(lq / 2 * heads + heads - 1) * dim + 1] = NAN;
    const Tensor out_nan = ops::attention(q_nan, k, v, scale);
    CHECK(std::isnan(out_nan.f32()[(lq / 2 * heads + heads - 1) * dim]));
    CHECK(std::isfinite(out_nan.f32()[0]));
    CHECK_FALSE(rel_l2(out_nan, ref) < 1e-6);
  }
}

TEST_CASE("RoPE equals a direct complex rotation with Wan's 22/21/21 split") {
  CHECK(ops::rope_split(128).t_pairs == 22);
  CHECK(ops::rope_split(128).h_pairs == 21);
  CHECK(ops::rope_split(128).w_pairs == 21);
  const int64_t tokens_per_frame = 15, grid_width = 5, heads = 2, dim = 128;  // 3 x 5 grid, 2 frames
  Tensor x = random_tensor({30, heads, dim}, 14);
  Tensor roped = x.clone();
  const std::vector<int64_t> frames = {7, 9};
  ops::rope_apply(roped, {tokens_per_frame, grid_width, 10000.0}, frames);
  Tensor ref = Tensor::empty(x.shape());
  for (int t = 0; t < 30; ++t) {
    const int f = frames[size_t(t / 15)], row = (t % 15) / 5, col = t % 5;
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 64; ++j) {
        // Wan: freqs = 1 / theta^(arange(0, axis_dim, 2) / axis_dim) with axis dims 44 / 42 / 42.
        double position, omega;
        if (j < 22) position = f, omega = 1.0 / std::pow(10000.0, 2.0 * j / 44.0);
        else if (j < 43) position = row, omega = 1.0 / std::pow(10000.0, 2.0 * (j - 22) / 42.0);
        else position = col, omega = 1.0 / std::pow(10000.0, 2.0 * (j - 43) / 42.0);
        const float* in = x.f32() + (t * heads + h) * dim + 2 * j;
        const std::complex<double> z = std::complex<double>(in[0], in[1]) * std::polar(1.0, position * omega);
        ref.f32()[(t * heads + h) * dim + 2 * j] = float(z.real());
        ref.f32()[(t * heads + h) * dim + 2 * j + 1] = float(z.imag());
      }
  }
  CHECK(rel_l2(roped, ref) < 1e-6);
  CHECK(rel_l2(x, ref) > 0.1);
}

TEST_CASE("timestep embedding is [cos, sin] with Wan's frequencies") {
  Tensor e = ops::timestep_embedding(937.5, 256);
  CHECK(e.f32()[0] == doctest::Approx(std::cos(937.5)));
  CHECK(e.f32()[128] == doctest::Approx(std::sin(937.5)));
  CHECK(e.f32()[5] == doctest::Approx(std::cos(937.5 * std::pow(10000.0, -5.0 / 128))));
}

TEST_CASE("patchify orders (c, q, r); unpatchify orders (q, r, c)") {
  Tensor latents = random_tensor({2, 3, 4, 6}, 15);  // F, C, H, W with a 2x2 patch -> 2 x 3 grid
  Tensor tokens = ops::patchify(latents, 2, 2);
  CHECK(tokens.shape() == Shape{12, 12});
  // token (f=1, y=1, x=2), element (c=2, q=1, r=0) = pixel (2*1+1, 2*2+0) of channel 2, frame 1.
  CHECK(tokens.f32()[(6 + 1 * 3 + 2) * 12 + 2 * 4 + 1 * 2 + 0] == latents.f32()[((1 * 3 + 2) * 4 + 3) * 6 + 4]);
  // Reorder (c, q, r) -> (q, r, c) by hand, then unpatchify must give back the latents.
  Tensor head = Tensor::empty(tokens.shape());
  for (int t = 0; t < 12; ++t)
    for (int c = 0; c < 3; ++c)
      for (int qr = 0; qr < 4; ++qr) head.f32()[t * 12 + qr * 3 + c] = tokens.f32()[t * 12 + c * 4 + qr];
  CHECK(rel_l2(ops::unpatchify(head, 2, 3, 2, 3, 2, 2), latents) == 0.0);
}
