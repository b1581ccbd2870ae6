#pragma once
// The decoder stage of `lightforce bench` (cmd/bench.cpp): the DiT's latents of one size decoded chunk by chunk.
#include <nlohmann/json.hpp>

#include <string>

#include "config/config.h"
#include "core/tensor.h"

namespace lf::cmd {

// Decodes `latents` [frames, C, h, w] in chunks of `chunk_frames` with `decoder` (a registry name) and random
// weights on `device`, as generate does after each chunk (no overlap with the DiT yet). Returns per-chunk seconds,
// the total, video frames, GPU time per op class and the decoder's peak memory.
nlohmann::json bench_decoder(const std::string& decoder, const ModelConfig& model, const Tensor& latents,
                             int64_t chunk_frames, Device device);

}  // namespace lf::cmd
