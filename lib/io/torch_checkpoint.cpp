#include "io/torch_checkpoint.h"

#include <string_view>

#include "core/error.h"
#include "io/pickle.h"

namespace lf {

namespace {

// Collects the tensors of a pickled object under dotted names. Dicts and lists/tuples are descended (int keys
// and list positions become name parts, as in optimizer state); any other leaf is not a weight and is skipped.
class Flattener {
 public:
  Flattener(const std::string& path, size_t value_count) : path_(path), visits_left_(16 * value_count + 1024) {}

  struct Found {
    std::string name;
    const PickleTensorRef* tensor;
  };
  std::vector<Found> found;

  void walk(const PickleValue& value, const std::string& name, int depth) {
    // Shared references make the tree a DAG; the budget keeps a hostile one from exploding exponentially.
    LF_CHECK(--visits_left_ > 0, "pytorch checkpoint '{}': object graph too large (hostile or corrupt pickle)", path_);
    LF_CHECK(depth <= kPickleMaxWalkDepth, "pytorch checkpoint '{}': objects nested deeper than {} levels at '{}'",
             path_, kPickleMaxWalkDepth, name);
    switch (value.kind) {
      case PickleKind::Tensor:
        found.push_back({name, value.tensor.get()});
        return;
      case PickleKind::Dict:
        for (const auto& [key, item] : value.dict) {
          const std::string part = key->kind == PickleKind::String ? key->text : std::to_string(key->integer);
          walk(*item, name.empty() ? part : name + "." + part, depth + 1);
        }
        return;
      case PickleKind::List:
      case PickleKind::Tuple:
        for (size_t i = 0; i < value.items.size(); ++i)
          walk(*value.items[i], name.empty() ? std::to_string(i) : name + "." + std::to_string(i), depth + 1);
        return;
      default:
        return;
    }
  }

 private:
  const std::string& path_;
  int64_t visits_left_;
};

// Row-major with no gaps; sizes of 1 may carry any stride (PyTorch leaves them arbitrary).
bool is_contiguous(const Shape& shape, const std::vector<int64_t>& stride) {
  if (shape_numel(shape) == 0) return true;
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && stride[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

}  // namespace

TorchCheckpoint::TorchCheckpoint(std::shared_ptr<const MappedFile> file)
    : Checkpoint(file->path()), file_(std::move(file)) {}

std::unique_ptr<TorchCheckpoint> TorchCheckpoint::open(const std::string& path) { return open(MappedFile::open(path)); }

std::unique_ptr<TorchCheckpoint> TorchCheckpoint::open(std::shared_ptr<const MappedFile> file) {
  std::unique_ptr<TorchCheckpoint> checkpoint(new TorchCheckpoint(std::move(file)));
  checkpoint->load();
  return checkpoint;
}

void TorchCheckpoint::load() {
  const std::string& path = file_->path();
  const ZipReader zip(file_);

  // torch.save puts every record under one folder, named after the file at save time.
  const ZipEntry* pickle_entry = nullptr;
  for (const ZipEntry& entry : zip.entries()) {
    const size_t slash = entry.name.find('/');
    if (slash == std::string::npos || entry.name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    LF_CHECK(pickle_entry == nullptr, "pytorch checkpoint '{}': two pickles ('{}' and '{}')", path,
             pickle_entry ? pickle_entry->name : "", entry.name);
    pickle_entry = &entry;
    archive_ = entry.name.substr(0, slash);
  }
  LF_CHECK(pickle_entry != nullptr,
           "pytorch checkpoint '{}': no '<archive>/data.pkl' record (a zip, but not written by torch.save)", path);

  if (const ZipEntry* byteorder = zip.find(archive_ + "/byteorder")) {
    const std::span<const uint8_t> bytes = zip.stored_data_checked(*byteorder);
    std::string_view order(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (!order.empty() && order.back() == '\n') order.remove_suffix(1);
    LF_CHECK(order == "little", "pytorch checkpoint '{}': byteorder is '{}', only little-endian is supported", path,
             order);
  }

  const PickleDocument document =
      unpickle_restricted(zip.stored_data_checked(*pickle_entry), path + ":" + pickle_entry->name);
  LF_CHECK(document.root().kind == PickleKind::Dict, "pytorch checkpoint '{}': top-level object is a {}, not a dict",
           path, pickle_kind_name(document.root().kind));
  Flattener flattener(path, document.value_count());
  flattener.walk(document.root(), "", 0);

  for (const Flattener::Found& found : flattener.found) {
    const PickleTensorRef& tensor = *found.tensor;
    const std::string& name = found.name;
    const size_t element_size = dtype_size(tensor.dtype);
    const std::string record = archive_ + "/data/" + tensor.storage.key;
    const ZipEntry* entry = zip.find(record);
    LF_CHECK(entry != nullptr, "pytorch checkpoint '{}': tensor '{}': storage record '{}' is missing", path, name,
             record);
    const std::span<const uint8_t> storage = zip.stored_data(*entry);
    uint64_t storage_bytes = 0;
    LF_CHECK(
        !__builtin_mul_overflow(uint64_t(tensor.storage.numel), dtype_size(tensor.storage.dtype), &storage_bytes) &&
            storage_bytes <= storage.size(),
        "pytorch checkpoint '{}': tensor '{}': storage '{}' claims {} {} elements but its record has {} bytes", path,
        name, record, tensor.storage.numel, dtype_name(tensor.storage.dtype), storage.size());
    const uint64_t storage_elements = storage_bytes / element_size;  // in the tensor's dtype

    // The last element reached is offset + sum((size - 1) * stride); it must lie inside the storage.
    LF_CHECK(tensor.storage_offset >= 0, "pytorch checkpoint '{}': tensor '{}': negative storage offset", path, name);
    uint64_t last = uint64_t(tensor.storage_offset);
    bool ok = true;
    bool empty = false;
    for (size_t i = 0; i < tensor.shape.size(); ++i) {
      ok = ok && tensor.shape[i] >= 0 && tensor.stride[i] >= 0;
      empty = empty || tensor.shape[i] == 0;
      uint64_t reach = 0;
      if (ok && tensor.shape[i] > 0)
        ok = !__builtin_mul_overflow(uint64_t(tensor.shape[i] - 1), uint64_t(tensor.stride[i]), &reach) &&
             !__builtin_add_overflow(last, reach, &last);
    }
    LF_CHECK(ok, "pytorch checkpoint '{}': tensor '{}': invalid size {} / stride {}", path, name,
             shape_str(tensor.shape), shape_str(tensor.stride));
    LF_CHECK(empty || last < storage_elements,
             "pytorch checkpoint '{}': tensor '{}' {} {} at offset {} runs past its storage of {} bytes", path, name,
             dtype_name(tensor.dtype), shape_str(tensor.shape), tensor.storage_offset, storage_bytes);
    LF_CHECK(index_.emplace(name, entries_.size()).second, "pytorch checkpoint '{}': two tensors are named '{}'", path,
             name);
    entries_.push_back({name, tensor.dtype, tensor.shape});
    stored_.push_back({tensor.stride, storage.data() + (empty ? 0 : uint64_t(tensor.storage_offset) * element_size)});
  }
}

Tensor TorchCheckpoint::view(const std::string& name) const {
  const auto found = index_.find(name);
  LF_CHECK(found != index_.end(), "pytorch checkpoint '{}': no tensor named '{}'", path(), name);
  const TensorEntry& entry = entries_[found->second];
  const Stored& stored = stored_[found->second];
  LF_CHECK(is_contiguous(entry.shape, stored.stride),
           "pytorch checkpoint '{}': tensor '{}' {} is not contiguous (stride {}); save it with .contiguous()", path(),
           name, shape_str(entry.shape), shape_str(stored.stride));
  return map_tensor(file_, stored.data, entry.shape, entry.dtype);
}

}  // namespace lf
