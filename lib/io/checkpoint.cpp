#include "io/checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"

namespace lf {

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& path) { return open(MappedFile::open(path)); }

std::unique_ptr<Checkpoint> Checkpoint::open(std::shared_ptr<const MappedFile> file) {
  const std::string path = file->path();
  const uint8_t* data = file->data();
  const size_t size = file->size();
  LF_CHECK(size > 0, "checkpoint '{}' is empty", path);
  if (size >= 4 && (std::memcmp(data, "PK\3\4", 4) == 0 || std::memcmp(data, "PK\5\6", 4) == 0))
    return TorchCheckpoint::open(std::move(file));
  // torch.save before 1.6 wrote a bare pickle that starts with PROTO 2 and the LONG1 magic 0x1950a86a20f9469cfc6c.
  // Read as a safetensors header length these 8 bytes are ~5e18, so the check cannot shadow a real safetensors.
  static constexpr uint8_t kLegacyTorchMagic[8] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46};
  if (size >= 8 && std::memcmp(data, kLegacyTorchMagic, 8) == 0)
    fail(
        "checkpoint '{}' is in the legacy (pre-1.6) PyTorch format; re-save it with torch.save in a recent PyTorch "
        "or convert it to safetensors",
        path);
  // Any other pickle (a PROTO 2..5 opcode first: pickle.dump, or torch.save of an object without the zip format).
  // A safetensors header whose length happens to start with those bytes is told apart by the '{' that opens its
  // JSON at byte 8.
  if (size >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5 && !(size > 8 && data[8] == '{'))
    fail("checkpoint '{}' is a bare Python pickle (protocol {}), not a torch.save zip archive or safetensors; "
         "load it in PyTorch and save it with torch.save or safetensors", path, int(data[1]));
  return SafetensorsCheckpoint::open(std::move(file));
}

Tensor Checkpoint::map_tensor(const std::shared_ptr<const MappedFile>& file, const uint8_t* data, const Shape& shape,
                              DType dtype) {
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) != 0) {
    Tensor copy = Tensor::empty(shape, dtype);
    std::memcpy(copy.raw(), data, copy.nbytes());
    return copy;
  }
  // The mapping is read-only; the const_cast only satisfies Tensor's mutable-pointer interface.
  auto* mutable_data = const_cast<uint8_t*>(data);
  return Tensor::view_of(mutable_data, shape, dtype, std::shared_ptr<void>(file, mutable_data));
}

}  // namespace lf
