#pragma once
// The one weight-loading interface of the engine. A checkpoint is opened by content (not by extension), lists
// its tensors from the header alone, and hands out zero-copy views into a read-only memory map.
//
// Views are READ-ONLY: the mapping is PROT_READ, so writing through one faults. clone() or to() first.
// A tensor whose bytes are not aligned to its element size in the file (legal in both formats, though neither
// reference writer produces it) is returned as an aligned copy instead, since unaligned loads are undefined.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace lf {

struct TensorEntry {
  std::string name;
  DType dtype;
  Shape shape;
};

class Checkpoint {
 public:
  // "PK\3\4" / "PK\5\6" -> PyTorch zip checkpoint; a legacy (pre-1.6) torch pickle or any other bare pickle
  // is refused with a hint; anything else is read as safetensors, whose header checks reject files that are neither.
  // Errors name the path. Opening reads headers only, never tensor data.
  static std::unique_ptr<Checkpoint> open(const std::string& path);
  static std::unique_ptr<Checkpoint> open(std::shared_ptr<const MappedFile> file);  // named by file->path()

  virtual ~Checkpoint() = default;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  virtual std::string format() const = 0;                       // "safetensors" | "pytorch-zip"
  virtual const std::vector<TensorEntry>& entries() const = 0;  // file order
  virtual bool contains(const std::string& name) const = 0;
  // The stored dtype and shape, no copy; throws lf::Error naming the key (and the file) when absent.
  virtual Tensor view(const std::string& name) const = 0;
  virtual std::map<std::string, std::string> metadata() const { return {}; }

  const std::string& path() const { return path_; }

 protected:
  explicit Checkpoint(std::string path) : path_(std::move(path)) {}
  // A view of `data` (inside `file`) that keeps the mapping alive, or an aligned copy (see above).
  static Tensor map_tensor(const std::shared_ptr<const MappedFile>& file, const uint8_t* data, const Shape& shape,
                           DType dtype);

 private:
  std::string path_;
};

}  // namespace lf
