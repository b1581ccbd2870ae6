#include "attention/block_mask.h"

#include "core/error.h"

namespace lf {

double BlockMask::density() const {
  const double total = double(rows()) * double(geometry.key_blocks());
  return total > 0 ? double(key_indices.size()) / total : 0.0;
}

double BlockMask::token_density() const {
  double selected = 0, total = 0;
  for (int64_t row = 0; row < rows(); ++row) {
    const double query_rows = double(geometry.query_block_length(row % geometry.query_blocks()));
    for (int32_t i = row_offsets[size_t(row)]; i < row_offsets[size_t(row) + 1]; ++i)
      selected += query_rows * double(geometry.key_block_length(key_indices[size_t(i)]));
    total += query_rows * double(geometry.key_tokens());
  }
  return total > 0 ? selected / total : 0.0;
}

BlockMask BlockMask::dense(int64_t heads, const BlockGeometry& geometry) {
  BlockMask mask;
  mask.heads = heads;
  mask.geometry = geometry;
  const int64_t key_blocks = geometry.key_blocks();
  mask.row_offsets.reserve(size_t(mask.rows() + 1));
  mask.row_offsets.push_back(0);
  for (int64_t row = 0; row < mask.rows(); ++row) {
    for (int64_t b = 0; b < key_blocks; ++b) mask.key_indices.push_back(int32_t(b));
    mask.row_offsets.push_back(int32_t(mask.key_indices.size()));
  }
  return mask;
}

void validate(const BlockMask& mask) {
  const BlockGeometry& g = mask.geometry;
  LF_CHECK(g.tokens_per_frame > 0 && g.query_tokens > 0 && g.key_frames > 0, "block mask: empty geometry");
  LF_CHECK(g.query_block == 64 || g.query_block == 128, "block mask: query block size {} (supported: 64, 128)",
           g.query_block);
  LF_CHECK(g.key_block == 64 || g.key_block == 128, "block mask: key block size {} (supported: 64, 128)",
           g.key_block);
  LF_CHECK(int64_t(mask.row_offsets.size()) == mask.rows() + 1 && mask.row_offsets.front() == 0 &&
               mask.row_offsets.back() == int32_t(mask.key_indices.size()),
           "block mask: {} row offsets for {} rows and {} indices", mask.row_offsets.size(), mask.rows(),
           mask.key_indices.size());
  LF_CHECK(mask.scores.empty() || mask.scores.size() == mask.key_indices.size(),
           "block mask: {} scores for {} indices", mask.scores.size(), mask.key_indices.size());
  for (int64_t row = 0; row < mask.rows(); ++row) {
    LF_CHECK(mask.row_offsets[size_t(row)] <= mask.row_offsets[size_t(row) + 1], "block mask: row {} offsets decrease",
             row);
    for (int32_t i = mask.row_offsets[size_t(row)]; i < mask.row_offsets[size_t(row) + 1]; ++i) {
      const int32_t block = mask.key_indices[size_t(i)];
      LF_CHECK(block >= 0 && block < g.key_blocks(), "block mask: row {} selects key block {} of {}", row, block,
               g.key_blocks());
      LF_CHECK(i == mask.row_offsets[size_t(row)] || mask.key_indices[size_t(i) - 1] < block,
               "block mask: row {} key blocks not strictly ascending", row);
    }
  }
}

}  // namespace lf
