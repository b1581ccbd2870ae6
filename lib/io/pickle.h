#pragma once
// A restricted unpickler for PyTorch checkpoints: it parses the pickle opcodes a torch state dict uses into a
// small value tree and never imports or calls anything. The few globals a state dict needs are recognised by
// name and interpreted here (OrderedDict, _rebuild_tensor_v2/v3, storage types, dtypes); any other global is
// refused with lf::Error the moment it is named, so a hostile checkpoint cannot run code. docs/weights.md lists
// the opcodes and globals.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace lf {

enum class PickleKind : uint8_t { None, Bool, Int, Float, String, Bytes, List, Tuple, Dict, Global, Storage, Tensor };
const char* pickle_kind_name(PickleKind kind);

// The allowed globals.
enum class PickleGlobal : uint8_t {
  OrderedDict,                // collections.OrderedDict
  RebuildTensorV2,            // torch._utils._rebuild_tensor_v2 (dtype from the typed storage)
  RebuildTensorV3,            // torch._utils._rebuild_tensor_v3 (explicit dtype; float8 in torch 2.x)
  RebuildParameter,           // torch._utils._rebuild_parameter
  RebuildParameterWithState,  // torch._utils._rebuild_parameter_with_state
  StorageType,                // torch.FloatStorage, torch.BFloat16Storage, ...
  UntypedStorage,             // torch.storage.UntypedStorage: bytes, paired with _rebuild_tensor_v3
  DTypeObject,                // torch.float8_e4m3fn, torch.bfloat16, ... (the dtype argument of v3)
  CodecsEncode,               // _codecs.encode: how protocol 2 spells a bytes object
};

// A persistent id ('storage', torch.<X>Storage, key, location, numel): the record "<archive>/data/<key>".
struct PickleStorageRef {
  std::string key;
  DType dtype = DType::F32;  // U8 for an untyped storage
  std::string location;
  int64_t numel = 0;  // in elements of `dtype` (so in bytes for an untyped storage)
};

// What torch._utils._rebuild_tensor_v2/v3(storage, storage_offset, size, stride, ...) would build.
struct PickleTensorRef {
  PickleStorageRef storage;
  DType dtype = DType::F32;    // the tensor's, which v3 may give apart from the storage's
  int64_t storage_offset = 0;  // in elements of `dtype`
  Shape shape;
  std::vector<int64_t> stride;  // in elements
};

struct PickleValue {
  PickleKind kind = PickleKind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;  // String and Bytes; "module.name" for Global
  PickleGlobal global = PickleGlobal::OrderedDict;
  DType storage_dtype = DType::F32;                         // Global of kind StorageType or DTypeObject
  std::vector<PickleValue*> items;                          // List and Tuple
  std::vector<std::pair<PickleValue*, PickleValue*>> dict;  // insertion order; keys are String or Int
  std::unique_ptr<PickleStorageRef> storage;                // Storage
  std::unique_ptr<PickleTensorRef> tensor;                  // Tensor
};

// Owns every value of one parsed pickle. Values point at each other (the memo shares them), and a hostile
// pickle can build cycles, so they live in an arena rather than owning each other; walkers must bound their
// depth (see kPickleMaxWalkDepth).
class PickleDocument {
 public:
  const PickleValue& root() const { return *root_; }
  size_t value_count() const { return values_.size(); }

 private:
  friend class Unpickler;
  std::vector<std::unique_ptr<PickleValue>> values_;
  PickleValue* root_ = nullptr;
};

inline constexpr int kPickleMaxWalkDepth = 64;

// Limits that bound the memory a hostile stream can make the parser use.
struct PickleLimits {
  size_t max_values = size_t(1) << 23;
  size_t max_stack = size_t(1) << 22;
  size_t max_marks = 4096;
  size_t max_memo = size_t(1) << 22;
};

// Parses `bytes`; `source` names the stream in errors: "pickle in '<source>': <what> (opcode at offset N)".
PickleDocument unpickle_restricted(std::span<const uint8_t> bytes, const std::string& source,
                                   const PickleLimits& limits = {});

}  // namespace lf
