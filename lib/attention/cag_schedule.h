#pragma once
// Light Forcing's Chunk-Aware Growth: one sparsity per chunk, dense for chunk 0, rising toward s_base with the
// chunk's cumulative frame count, under a key-length-weighted budget equal to s_target (light-forcing.md 2.2).
#include <cstdint>
#include <vector>

namespace lf {

struct CagSettings {
  int64_t frames = 21;        // latent frames of the video
  int64_t chunk_frames = 3;
  int64_t window_frames = 21; // kv length cap inside the formula (inference.py's local_attn_size default); -1: none
  double target_sparsity = 0.88;  // s_target
  double base_sparsity = 0.98;    // s_base
};

// Sparsity of every chunk (entry 0 = 0, dense).
std::vector<double> cag_sparsities(const CagSettings& settings);

// Key blocks kept per query block: min(K, int((1 - sparsity) * K)).
int64_t topk_for(double sparsity, int64_t key_blocks);

}  // namespace lf
