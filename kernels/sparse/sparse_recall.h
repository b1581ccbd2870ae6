#pragma once
// Sampled attention recall on the GPU: for query rows t = 0, s, 2s, ... (s = sample_stride) and every head, the
// dense softmax probability mass (scale * <q_t, k_j> over all keys j) that falls on the keys of the row's mask
// blocks. The statistics path used to copy q and k to the host for this (seconds per call at 1.3B); here it reads
// them where they are and returns one float per (head, sampled row).
// Host-side API with plain C++ types, like sparse_planner.h; every pointer is a device pointer.
#include <cstdint>

#include "kernels/sparse/sparse_planner.h"

namespace lf::gpu::sparse {

// Sampled rows of query_tokens at stride sample_stride (>= 1).
int recall_sampled_rows(int query_tokens, int sample_stride);

// q: bf16 [query_tokens, heads, head_dim], k: bf16 [key_tokens, heads, head_dim] (head_dim multiple of 8, at most
// 128; 16-byte aligned rows). row_offsets / key_indices: the mask's CSR (rows head * query_blocks + query_block,
// frame-aligned key blocks as in sparse_planner.h). out: [heads, recall_sampled_rows] fp32, the kept mass of each
// sampled row (1 for a full row, 0 for an empty one). Scores and the online softmax run in fp32.
void sampled_recall(const void* q, int64_t q_row_stride, const void* k, int64_t k_row_stride,
                    const PlannerGeometry& geometry, const int* row_offsets, const int* key_indices, int sample_stride,
                    float scale, float* out, void* stream = nullptr);

}  // namespace lf::gpu::sparse
