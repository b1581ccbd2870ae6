#pragma once
// PyTorch checkpoints in the zip format of torch.save (PyTorch >= 1.6): "<archive>/data.pkl" (the pickled
// object, read with the restricted unpickler), "<archive>/data/<key>" (one stored record per storage),
// "<archive>/byteorder". Nested dicts are flattened into dotted names; tensors are views into the map.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "io/zip_reader.h"

namespace lf {

class TorchCheckpoint final : public Checkpoint {
 public:
  // Parses data.pkl and checks every tensor against its storage record; reads no tensor data.
  // Throws lf::Error "pytorch checkpoint '<path>': ..." (or the zip / pickle error) on any defect.
  static std::unique_ptr<TorchCheckpoint> open(const std::string& path);
  static std::unique_ptr<TorchCheckpoint> open(std::shared_ptr<const MappedFile> file);

  std::string format() const override { return "pytorch-zip"; }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  bool contains(const std::string& name) const override { return index_.count(name) != 0; }
  // Fails naming the key for a non-contiguous tensor (a transposed view saved as is): the engine only reads
  // row-major weights, and such a tensor can still be listed.
  Tensor view(const std::string& name) const override;

  const std::string& archive_name() const { return archive_; }

 private:
  struct Stored {
    std::vector<int64_t> stride;
    const uint8_t* data = nullptr;  // first element, inside the map
  };

  explicit TorchCheckpoint(std::shared_ptr<const MappedFile> file);
  void load();

  std::shared_ptr<const MappedFile> file_;
  std::string archive_;
  std::vector<TensorEntry> entries_;
  std::vector<Stored> stored_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace lf
