#include "io/pickle.h"

#include <cstring>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include "core/error.h"

namespace lf {

namespace {

// Opcodes of pickle protocols 2-5 (Lib/pickle.py), named for error messages; the parser handles a subset.
// clang-format off
enum Op : uint8_t {
  MARK = '(', STOP = '.', BININT = 'J', BININT1 = 'K', BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R',
  BINSTRING = 'T', SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd',
  EMPTY_DICT = '}', APPENDS = 'e', BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', BINPUT = 'q',
  LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
  BINBYTES = 'B', SHORT_BINBYTES = 'C', PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87,
  NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
};
// clang-format on

const char* opcode_name(uint8_t op) {
  static constexpr std::pair<uint8_t, const char*> kNames[] = {
      {'(', "MARK"},
      {'.', "STOP"},
      {'0', "POP"},
      {'1', "POP_MARK"},
      {'2', "DUP"},
      {'F', "FLOAT"},
      {'I', "INT"},
      {'J', "BININT"},
      {'K', "BININT1"},
      {'L', "LONG"},
      {'M', "BININT2"},
      {'N', "NONE"},
      {'P', "PERSID"},
      {'Q', "BINPERSID"},
      {'R', "REDUCE"},
      {'S', "STRING"},
      {'T', "BINSTRING"},
      {'U', "SHORT_BINSTRING"},
      {'V', "UNICODE"},
      {'X', "BINUNICODE"},
      {'a', "APPEND"},
      {'b', "BUILD"},
      {'c', "GLOBAL"},
      {'d', "DICT"},
      {'}', "EMPTY_DICT"},
      {'e', "APPENDS"},
      {'g', "GET"},
      {'h', "BINGET"},
      {'i', "INST"},
      {'j', "LONG_BINGET"},
      {'l', "LIST"},
      {']', "EMPTY_LIST"},
      {'o', "OBJ"},
      {'p', "PUT"},
      {'q', "BINPUT"},
      {'r', "LONG_BINPUT"},
      {'s', "SETITEM"},
      {'t', "TUPLE"},
      {')', "EMPTY_TUPLE"},
      {'u', "SETITEMS"},
      {'G', "BINFLOAT"},
      {'B', "BINBYTES"},
      {'C', "SHORT_BINBYTES"},
      {0x80, "PROTO"},
      {0x81, "NEWOBJ"},
      {0x82, "EXT1"},
      {0x83, "EXT2"},
      {0x84, "EXT4"},
      {0x85, "TUPLE1"},
      {0x86, "TUPLE2"},
      {0x87, "TUPLE3"},
      {0x88, "NEWTRUE"},
      {0x89, "NEWFALSE"},
      {0x8a, "LONG1"},
      {0x8b, "LONG4"},
      {0x8c, "SHORT_BINUNICODE"},
      {0x8d, "BINUNICODE8"},
      {0x8e, "BINBYTES8"},
      {0x8f, "EMPTY_SET"},
      {0x90, "ADDITEMS"},
      {0x91, "FROZENSET"},
      {0x92, "NEWOBJ_EX"},
      {0x93, "STACK_GLOBAL"},
      {0x94, "MEMOIZE"},
      {0x95, "FRAME"},
      {0x96, "BYTEARRAY8"},
      {0x97, "NEXT_BUFFER"},
      {0x98, "READONLY_BUFFER"},
  };
  for (const auto& [code, name] : kNames)
    if (code == op) return name;
  return "unknown";
}

struct AllowedGlobal {
  const char* module;
  const char* name;
  PickleGlobal global;
  DType dtype;
};

constexpr AllowedGlobal kAllowedGlobals[] = {
    {"collections", "OrderedDict", PickleGlobal::OrderedDict, DType::F32},
    {"torch._utils", "_rebuild_tensor_v2", PickleGlobal::RebuildTensorV2, DType::F32},
    {"torch._utils", "_rebuild_tensor_v3", PickleGlobal::RebuildTensorV3, DType::F32},
    {"torch._utils", "_rebuild_parameter", PickleGlobal::RebuildParameter, DType::F32},
    {"torch._utils", "_rebuild_parameter_with_state", PickleGlobal::RebuildParameterWithState, DType::F32},
    {"_codecs", "encode", PickleGlobal::CodecsEncode, DType::F32},
    {"torch", "FloatStorage", PickleGlobal::StorageType, DType::F32},
    {"torch", "HalfStorage", PickleGlobal::StorageType, DType::F16},
    {"torch", "BFloat16Storage", PickleGlobal::StorageType, DType::BF16},
    {"torch", "Float8_e4m3fnStorage", PickleGlobal::StorageType, DType::F8E4M3},
    {"torch", "DoubleStorage", PickleGlobal::StorageType, DType::F64},
    {"torch", "LongStorage", PickleGlobal::StorageType, DType::I64},
    {"torch", "IntStorage", PickleGlobal::StorageType, DType::I32},
    {"torch", "ShortStorage", PickleGlobal::StorageType, DType::I16},
    {"torch", "CharStorage", PickleGlobal::StorageType, DType::I8},
    {"torch", "ByteStorage", PickleGlobal::StorageType, DType::U8},
    {"torch", "BoolStorage", PickleGlobal::StorageType, DType::Bool},
    {"torch.storage", "UntypedStorage", PickleGlobal::UntypedStorage, DType::U8},
    {"torch", "float32", PickleGlobal::DTypeObject, DType::F32},
    {"torch", "float16", PickleGlobal::DTypeObject, DType::F16},
    {"torch", "bfloat16", PickleGlobal::DTypeObject, DType::BF16},
    {"torch", "float8_e4m3fn", PickleGlobal::DTypeObject, DType::F8E4M3},
    {"torch", "float64", PickleGlobal::DTypeObject, DType::F64},
    {"torch", "int64", PickleGlobal::DTypeObject, DType::I64},
    {"torch", "int32", PickleGlobal::DTypeObject, DType::I32},
    {"torch", "int16", PickleGlobal::DTypeObject, DType::I16},
    {"torch", "int8", PickleGlobal::DTypeObject, DType::I8},
    {"torch", "uint8", PickleGlobal::DTypeObject, DType::U8},
    {"torch", "bool", PickleGlobal::DTypeObject, DType::Bool},
};

}  // namespace

const char* pickle_kind_name(PickleKind kind) {
  static constexpr const char* kNames[] = {"None", "bool",  "int",  "float",  "str",     "bytes",
                                           "list", "tuple", "dict", "global", "storage", "tensor"};
  return size_t(kind) < std::size(kNames) ? kNames[size_t(kind)] : "?";
}

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> bytes, const std::string& source, const PickleLimits& limits)
      : bytes_(bytes), source_(source), limits_(limits) {}

  PickleDocument run() {
    while (true) {
      op_offset_ = position_;
      const uint8_t op = read_u8();
      if (op == STOP) {
        document_.root_ = pop();
        return std::move(document_);
      }
      step(op);
    }
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    fail("pickle in '{}': {} (opcode at offset {})", source_, what, op_offset_);
  }

  const uint8_t* take(uint64_t count) {
    if (count > bytes_.size() - position_)
      error(fmt::format("truncated: needs {} more bytes, {} left", count, bytes_.size() - position_));
    const uint8_t* at = bytes_.data() + position_;
    position_ += size_t(count);
    return at;
  }
  uint8_t read_u8() {
    if (position_ >= bytes_.size()) error("truncated: ends without a STOP opcode");
    return bytes_[position_++];
  }
  uint64_t read_le(int count) {
    const uint8_t* at = take(uint64_t(count));
    uint64_t value = 0;
    for (int i = count - 1; i >= 0; --i) value = (value << 8) | at[i];
    return value;
  }
  std::string read_line() {  // GLOBAL's "module\n" and "name\n"
    constexpr size_t kMaxLine = 256;
    for (size_t end = position_; end < bytes_.size() && end - position_ <= kMaxLine; ++end) {
      if (bytes_[end] == '\n') {
        std::string line(reinterpret_cast<const char*>(bytes_.data() + position_), end - position_);
        position_ = end + 1;
        return line;
      }
    }
    error("GLOBAL name is unterminated or too long");
  }
  std::string read_text(uint64_t size) {
    const uint8_t* at = take(size);
    return std::string(reinterpret_cast<const char*>(at), size_t(size));
  }

  PickleValue* make(PickleKind kind) {
    if (document_.values_.size() >= limits_.max_values)
      error(fmt::format("more than {} values (hostile or corrupt pickle)", limits_.max_values));
    document_.values_.push_back(std::make_unique<PickleValue>());
    document_.values_.back()->kind = kind;
    return document_.values_.back().get();
  }
  PickleValue* make_int(int64_t value) {
    PickleValue* result = make(PickleKind::Int);
    result->integer = value;
    return result;
  }
  PickleValue* make_text(PickleKind kind, std::string text) {
    PickleValue* result = make(kind);
    result->text = std::move(text);
    return result;
  }

  size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(PickleValue* value) {
    if (stack_.size() >= limits_.max_stack) error(fmt::format("stack deeper than {} entries", limits_.max_stack));
    stack_.push_back(value);
  }
  PickleValue* pop() {
    if (stack_.size() <= stack_floor()) error("stack underflow");
    PickleValue* value = stack_.back();
    stack_.pop_back();
    return value;
  }
  PickleValue* top() {
    if (stack_.size() <= stack_floor()) error("stack underflow");
    return stack_.back();
  }
  std::vector<PickleValue*> pop_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    std::vector<PickleValue*> items(stack_.begin() + std::ptrdiff_t(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  PickleValue* expect(PickleValue* value, PickleKind kind, const char* what) {
    if (value->kind != kind)
      error(fmt::format("{} must be a {}, found a {}", what, pickle_kind_name(kind), pickle_kind_name(value->kind)));
    return value;
  }

  void memo_put(uint64_t index) {
    PickleValue* value = top();
    if (memo_.size() >= limits_.max_memo && !memo_.count(index))
      error(fmt::format("memo larger than {} entries", limits_.max_memo));
    memo_[index] = value;
  }
  void memo_get(uint64_t index) {
    const auto found = memo_.find(index);
    if (found == memo_.end()) error(fmt::format("memo entry {} is not defined", index));
    push(found->second);
  }

  // Python dicts replace the value of an existing key in place; the per-dict index keeps that O(1).
  void set_item(PickleValue* dict, PickleValue* key, PickleValue* value) {
    expect(dict, PickleKind::Dict, "SETITEM target");
    std::string index_key(1, key->kind == PickleKind::String ? 's' : 'i');
    if (key->kind == PickleKind::String) {
      index_key += key->text;
    } else if (key->kind == PickleKind::Int) {
      index_key += std::to_string(key->integer);
    } else {
      error(fmt::format("dict key is a {}; only str and int keys are supported", pickle_kind_name(key->kind)));
    }
    auto& index = dict_index_[dict];
    const auto [found, inserted] = index.emplace(std::move(index_key), dict->dict.size());
    if (inserted) {
      dict->dict.emplace_back(key, value);
    } else {
      dict->dict[found->second].second = value;
    }
  }

  PickleValue* resolve_global(const std::string& module, const std::string& name) {
    for (const AllowedGlobal& allowed : kAllowedGlobals) {
      if (module == allowed.module && name == allowed.name) {
        PickleValue* result = make_text(PickleKind::Global, module + "." + name);
        result->global = allowed.global;
        result->storage_dtype = allowed.dtype;
        return result;
      }
    }
    fail(
        "pickle in '{}': forbidden global '{}.{}' (only torch tensor/storage rebuilders and OrderedDict are "
        "allowed; opcode at offset {})",
        source_, module, name, op_offset_);
  }

  std::vector<int64_t> int_tuple(PickleValue* value, const char* what) {
    expect(value, PickleKind::Tuple, what);
    std::vector<int64_t> out;
    for (PickleValue* item : value->items) out.push_back(expect(item, PickleKind::Int, what)->integer);
    return out;
  }

  // Interprets a call of an allowed global; this is the only place REDUCE/NEWOBJ results come from.
  PickleValue* call(PickleValue* callable, PickleValue* args_tuple) {
    expect(callable, PickleKind::Global, "REDUCE callable");
    expect(args_tuple, PickleKind::Tuple, "REDUCE arguments");
    const std::vector<PickleValue*>& args = args_tuple->items;
    auto want_args = [&](bool ok) {
      if (!ok) error(fmt::format("unexpected arguments ({}) to '{}'", args.size(), callable->text));
    };
    switch (callable->global) {
      case PickleGlobal::OrderedDict:
        want_args(args.empty());
        return make(PickleKind::Dict);
      case PickleGlobal::RebuildTensorV2:
        want_args(args.size() == 6 || args.size() == 7);
        return rebuild_tensor(args, args[0]->kind == PickleKind::Storage ? args[0]->storage->dtype : DType::F32, 6);
      case PickleGlobal::RebuildTensorV3: {
        want_args(args.size() == 7 || args.size() == 8);
        const PickleValue* dtype = expect(args[6], PickleKind::Global, "tensor dtype");
        if (dtype->global != PickleGlobal::DTypeObject) error(fmt::format("'{}' is not a dtype", dtype->text));
        return rebuild_tensor(args, dtype->storage_dtype, 7);
      }
      case PickleGlobal::RebuildParameter:
      case PickleGlobal::RebuildParameterWithState:
        want_args(args.size() == (callable->global == PickleGlobal::RebuildParameter ? 3u : 4u));
        expect(args[1], PickleKind::Bool, "parameter requires_grad");
        expect(args[2], PickleKind::Dict, "parameter backward hooks");
        return expect(args[0], PickleKind::Tensor, "parameter data");  // the state only holds Python attributes
      case PickleGlobal::CodecsEncode: {
        want_args(args.size() == 2);
        const std::string& encoding = expect(args[1], PickleKind::String, "encoding")->text;
        if (encoding != "latin1" && encoding != "latin-1") error("_codecs.encode supports latin1 only");
        return make_text(PickleKind::Bytes, utf8_to_latin1(expect(args[0], PickleKind::String, "bytes text")->text));
      }
      case PickleGlobal::StorageType:
      case PickleGlobal::UntypedStorage:
      case PickleGlobal::DTypeObject:
        break;
    }
    error(fmt::format("'{}' cannot be called", callable->text));
  }

  // (storage, storage_offset, size, stride, requires_grad, backward_hooks, [dtype (v3),] [metadata]).
  PickleValue* rebuild_tensor(const std::vector<PickleValue*>& args, DType dtype, size_t metadata_index) {
    PickleValue* result = make(PickleKind::Tensor);
    result->tensor = std::make_unique<PickleTensorRef>();
    PickleTensorRef& tensor = *result->tensor;
    tensor.storage = *expect(args[0], PickleKind::Storage, "tensor storage")->storage;
    tensor.dtype = dtype;
    tensor.storage_offset = expect(args[1], PickleKind::Int, "tensor storage offset")->integer;
    tensor.shape = int_tuple(args[2], "tensor size");
    tensor.stride = int_tuple(args[3], "tensor stride");
    expect(args[4], PickleKind::Bool, "tensor requires_grad");
    expect(args[5], PickleKind::Dict, "tensor backward hooks");
    if (args.size() > metadata_index) expect(args[metadata_index], PickleKind::Dict, "tensor metadata");
    if (tensor.shape.size() != tensor.stride.size()) error("tensor size and stride have different lengths");
    // An untyped storage reads as bytes (U8); a typed one must match the tensor.
    if (tensor.dtype != tensor.storage.dtype && tensor.storage.dtype != DType::U8)
      error(fmt::format("tensor of dtype {} on a typed {} storage", dtype_name(tensor.dtype),
                        dtype_name(tensor.storage.dtype)));
    return result;
  }

  // Protocol 2 stores bytes as the latin1 decoding of them, in UTF-8: code points 0-255 only.
  std::string utf8_to_latin1(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      const uint8_t lead = uint8_t(text[i]);
      if (lead < 0x80) {
        out.push_back(char(lead));
      } else if ((lead == 0xc2 || lead == 0xc3) && i + 1 < text.size() && (uint8_t(text[i + 1]) & 0xc0) == 0x80) {
        out.push_back(char(((lead & 0x03) << 6) | (uint8_t(text[i + 1]) & 0x3f)));
        ++i;
      } else {
        error("_codecs.encode text is not latin1");
      }
    }
    return out;
  }

  PickleValue* persistent_load(PickleValue* pid) {
    expect(pid, PickleKind::Tuple, "persistent id");
    const auto& items = pid->items;
    if (items.size() != 5 || items[0]->kind != PickleKind::String || items[0]->text != "storage")
      error("persistent id is not a ('storage', type, key, location, numel) tuple");
    PickleValue* type = expect(items[1], PickleKind::Global, "storage type");
    if (type->global != PickleGlobal::StorageType && type->global != PickleGlobal::UntypedStorage)
      error(fmt::format("'{}' is not a storage type", type->text));
    PickleValue* result = make(PickleKind::Storage);
    result->storage = std::make_unique<PickleStorageRef>();
    result->storage->dtype = type->storage_dtype;
    result->storage->key = expect(items[2], PickleKind::String, "storage key")->text;
    result->storage->location = expect(items[3], PickleKind::String, "storage location")->text;
    result->storage->numel = expect(items[4], PickleKind::Int, "storage size")->integer;
    if (result->storage->numel < 0) error("negative storage size");
    return result;
  }

  void step(uint8_t op) {
    switch (op) {
      case PROTO: {
        const uint8_t protocol = read_u8();
        if (protocol > 5) error(fmt::format("unsupported pickle protocol {}", protocol));
        return;
      }
      case FRAME:  // frames only group opcodes for buffered I/O; the contents are parsed in place
        if (read_le(8) > bytes_.size() - position_) error("FRAME runs past the end of the data");
        return;
      case MARK:
        if (marks_.size() >= limits_.max_marks) error(fmt::format("more than {} nested MARKs", limits_.max_marks));
        marks_.push_back(stack_.size());
        return;
      case EMPTY_DICT:
        return push(make(PickleKind::Dict));
      case EMPTY_LIST:
        return push(make(PickleKind::List));
      case EMPTY_TUPLE:
        return push(make(PickleKind::Tuple));
      case DICT: {
        const std::vector<PickleValue*> items = pop_mark();
        if (items.size() % 2) error("DICT with an odd number of items");
        PickleValue* dict = make(PickleKind::Dict);
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
        return push(dict);
      }
      case LIST:
      case TUPLE: {
        PickleValue* result = make(op == LIST ? PickleKind::List : PickleKind::Tuple);
        result->items = pop_mark();
        return push(result);
      }
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        PickleValue* result = make(PickleKind::Tuple);
        result->items.resize(size_t(op - TUPLE1 + 1));
        for (size_t i = result->items.size(); i-- > 0;) result->items[i] = pop();
        return push(result);
      }
      case SETITEM: {
        PickleValue* value = pop();
        PickleValue* key = pop();
        return set_item(top(), key, value);
      }
      case SETITEMS: {
        const std::vector<PickleValue*> items = pop_mark();
        if (items.size() % 2) error("SETITEMS with an odd number of items");
        PickleValue* dict = top();
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
        return;
      }
      case APPEND: {
        PickleValue* value = pop();
        expect(top(), PickleKind::List, "APPEND target")->items.push_back(value);
        return;
      }
      case APPENDS: {
        const std::vector<PickleValue*> items = pop_mark();
        auto& list = expect(top(), PickleKind::List, "APPENDS target")->items;
        list.insert(list.end(), items.begin(), items.end());
        return;
      }
      case BININT:
        return push(make_int(int32_t(uint32_t(read_le(4)))));
      case BININT1:
        return push(make_int(int64_t(read_le(1))));
      case BININT2:
        return push(make_int(int64_t(read_le(2))));
      case LONG1: {
        const uint8_t size = read_u8();
        if (size > 8) error(fmt::format("integer of {} bytes does not fit in 64 bits", size));
        uint64_t value = size ? read_le(size) : 0;
        if (size > 0 && size < 8 && (value >> (8 * size - 1)) & 1) value |= ~uint64_t(0) << (8 * size);
        return push(make_int(int64_t(value)));
      }
      case BINFLOAT: {
        const uint8_t* at = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | at[i];  // big-endian, unlike every other field
        PickleValue* value = make(PickleKind::Float);
        std::memcpy(&value->real, &bits, 8);
        return push(value);
      }
      case NONE:
        return push(make(PickleKind::None));
      case NEWTRUE:
      case NEWFALSE: {
        PickleValue* value = make(PickleKind::Bool);
        value->boolean = op == NEWTRUE;
        return push(value);
      }
      case BINUNICODE:
        return push(make_text(PickleKind::String, read_text(read_le(4))));
      case SHORT_BINUNICODE:
        return push(make_text(PickleKind::String, read_text(read_le(1))));
      case BINUNICODE8:
        return push(make_text(PickleKind::String, read_text(read_le(8))));
      case BINSTRING: {
        const int32_t size = int32_t(uint32_t(read_le(4)));
        if (size < 0) error("BINSTRING with a negative length");
        return push(make_text(PickleKind::String, read_text(uint64_t(size))));
      }
      case SHORT_BINSTRING:
        return push(make_text(PickleKind::String, read_text(read_le(1))));
      case BINBYTES:
        return push(make_text(PickleKind::Bytes, read_text(read_le(4))));
      case SHORT_BINBYTES:
        return push(make_text(PickleKind::Bytes, read_text(read_le(1))));
      case BINBYTES8:
        return push(make_text(PickleKind::Bytes, read_text(read_le(8))));
      case BINPUT:
        return memo_put(read_le(1));
      case LONG_BINPUT:
        return memo_put(read_le(4));
      case MEMOIZE:
        return memo_put(memo_.size());
      case BINGET:
        return memo_get(read_le(1));
      case LONG_BINGET:
        return memo_get(read_le(4));
      case GLOBAL: {
        const std::string module = read_line();
        const std::string name = read_line();
        return push(resolve_global(module, name));
      }
      case STACK_GLOBAL: {
        PickleValue* name = expect(pop(), PickleKind::String, "STACK_GLOBAL name");
        PickleValue* module = expect(pop(), PickleKind::String, "STACK_GLOBAL module");
        return push(resolve_global(module->text, name->text));
      }
      case REDUCE: {
        PickleValue* args = pop();
        PickleValue* callable = pop();
        return push(call(callable, args));
      }
      case NEWOBJ: {
        PickleValue* args = expect(pop(), PickleKind::Tuple, "NEWOBJ arguments");
        PickleValue* type = expect(pop(), PickleKind::Global, "NEWOBJ class");
        if (type->global != PickleGlobal::OrderedDict || !args->items.empty())
          error(fmt::format("NEWOBJ of '{}' is not supported", type->text));
        return push(make(PickleKind::Dict));
      }
      case BUILD: {
        pop();  // the state: instance attributes (e.g. a state dict's _metadata), not items
        const PickleValue* target = top();
        if (target->kind != PickleKind::Dict && target->kind != PickleKind::Tensor)
          error(fmt::format("BUILD on a {} is not supported", pickle_kind_name(target->kind)));
        return;
      }
      case BINPERSID:
        return push(persistent_load(pop()));
      default:
        error(fmt::format("unsupported opcode 0x{:02x} ({})", op, opcode_name(op)));
    }
  }

  std::span<const uint8_t> bytes_;
  const std::string& source_;
  PickleLimits limits_;
  size_t position_ = 0;
  size_t op_offset_ = 0;
  PickleDocument document_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, size_t>> dict_index_;
};

PickleDocument unpickle_restricted(std::span<const uint8_t> bytes, const std::string& source,
                                   const PickleLimits& limits) {
  return Unpickler(bytes, source, limits).run();
}

}  // namespace lf
