// lightforce bench --text-encoder: the umT5 encoder with random weights, made resident, timed over repeated
// encodes of one prompt length (issue 17's measure: 512 tokens, resident weights). Load time (host generation +
// upload) is reported apart from the encode time.
#include "bench_text_encoder.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "model/umt5_config.h"
#include "model/umt5_encoder.h"
#include "ops/ops.h"

namespace lf::cmd {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

nlohmann::json bench_text_encoder(const TextEncoderBench& bench, Device device, bool quiet) {
  LF_CHECK(bench.repeat >= 1, "--repeat must be at least 1, got {}", bench.repeat);
  Umt5Config config = load_umt5_config(bench.encoder);
  LF_CHECK(bench.tokens >= 1 && bench.tokens <= config.max_tokens, "--tokens {}: the encoder '{}' takes 1..{}",
           bench.tokens, bench.encoder, config.max_tokens);
  // The embedding is a host gather of `tokens` rows: the table's size changes nothing timed, and the full
  // 256384-row table would be 4 GB of random floats to make.
  config.vocab = std::min<int64_t>(config.vocab, 1024);
  const auto load_started = std::chrono::steady_clock::now();
  Umt5Weights weights = random_umt5_weights(config, 1);
  // Stored as bf16, as models_t5_umt5-xxl-enc-bf16.pth holds them, so "made resident" times the upload of a real
  // file's bytes (no conversion on the way).
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < weights.blocks.size(); ++i)
    for (Tensor* matrix : {&weights.blocks[i].q, &weights.blocks[i].k, &weights.blocks[i].v, &weights.blocks[i].o,
                           &weights.blocks[i].gate, &weights.blocks[i].fc1, &weights.blocks[i].fc2})
      *matrix = matrix->to(DType::BF16);
  const double generate_seconds = seconds_since(load_started);
  const auto upload_started = std::chrono::steady_clock::now();
  Umt5Encoder encoder(config, std::move(weights), device, bench.fp8);
  encoder.make_resident();
  ops::synchronize_device();
  const double upload_seconds = seconds_since(upload_started);

  std::vector<int64_t> ids(size_t(bench.tokens));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int64_t(2 + (i * 7919) % size_t(config.vocab - 2));
  ids.back() = 1;  // EOS, as the tokenizer ends every prompt
  encoder.encode_ids(ids);  // warm-up: cuBLASLt plans, the allocator's cache
  ops::synchronize_device();
  ops::reset_device_peak_memory();
  ops::set_op_profiling(true);
  std::vector<double> times_ms;
  for (int64_t run = 0; run < bench.repeat; ++run) {
    const auto started = std::chrono::steady_clock::now();
    const Tensor out = encoder.encode_ids(ids);  // ends with the copy to the host: synchronous
    times_ms.push_back(seconds_since(started) * 1e3);
    LF_CHECK(out.dim(0) == bench.tokens, "bench: the encoder returned {} rows for {} tokens", out.dim(0), bench.tokens);
  }
  ops::set_op_profiling(false);
  const auto profile = ops::op_profile_ms();
  const ops::DeviceMemoryStats memory = ops::device_memory_stats();
  std::vector<double> sorted = times_ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  nlohmann::json op_class_ms = nlohmann::json::object();
  for (const auto& [op_class, ms] : profile) op_class_ms[op_class] = ms / double(bench.repeat);
  const double weight_bytes = double(encoder.resident_bytes());
  if (!quiet)
    fmt::print(stderr, "bench text encoder {} ({} tokens{}): median {:.2f} ms (min {:.2f}, max {:.2f}); weights {:.2f} "
               "GB generated in {:.1f} s, made resident in {:.2f} s ({:.1f} GB/s)\n", bench.encoder, bench.tokens,
               bench.fp8 ? ", fp8 weights" : "", median, sorted.front(), sorted.back(), weight_bytes / 1e9,
               generate_seconds, upload_seconds, weight_bytes / 1e9 / upload_seconds);
  return {{"encoder", bench.encoder},
          {"tokens", bench.tokens},
          {"fp8_weights", bench.fp8},
          {"repeat", bench.repeat},
          {"encode_ms", times_ms},
          {"median_encode_ms", median},
          {"op_class_ms_per_encode", op_class_ms},
          {"weights_generate_seconds", generate_seconds},
          {"weights_resident_seconds", upload_seconds},
          {"resident_weight_bytes", weight_bytes},
          {"upload_gb_per_second", weight_bytes / 1e9 / upload_seconds},
          {"peak_gpu_bytes_during_encodes", memory.peak_bytes}};
}

}  // namespace lf::cmd
