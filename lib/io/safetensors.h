#pragma once
// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {str: str}}, then the raw little-endian tensor bytes. Read through a memory map; written
// through lf::AtomicFile so a failed write never leaves a partial file at the final path.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/checkpoint.h"
#include "io/mapped_file.h"

namespace lf {

// The format's own cap on the JSON header; larger values mean a corrupt or non-safetensors file.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

class SafetensorsCheckpoint final : public Checkpoint {
 public:
  // Validates the whole header (see docs/weights.md); throws lf::Error "safetensors '<path>': ..." on any defect.
  static std::unique_ptr<SafetensorsCheckpoint> open(const std::string& path);
  static std::unique_ptr<SafetensorsCheckpoint> open(std::shared_ptr<const MappedFile> file);

  std::string format() const override { return "safetensors"; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  bool contains(const std::string& name) const override { return index_.count(name) != 0; }
  Tensor view(const std::string& name) const override;
  std::map<std::string, std::string> metadata() const override { return metadata_; }

 private:
  explicit SafetensorsCheckpoint(std::shared_ptr<const MappedFile> file);
  void parse_header();

  std::shared_ptr<const MappedFile> file_;
  std::vector<TensorEntry> entries_;  // header order
  std::vector<size_t> data_begin_;    // absolute file offset of each entry's bytes
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any dtype) and `metadata`. Tensors are laid out by decreasing element size (stable, so
// equal sizes keep the caller's order): with the header padded to a multiple of 8, every tensor then starts at
// an offset aligned to its element size. Names must be unique, non-empty and not "__metadata__".
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace lf
