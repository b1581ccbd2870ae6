// Weight files: safetensors round trips and header validation, the PyTorch zip reader on fixtures written by
// tools/make_io_fixtures.py (values follow formulas recomputed here), and the restricted unpickler's refusals.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "io/checkpoint.h"
#include "io/mapped_file.h"
#include "io/pickle.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "io/zip_reader.h"
#include "test_util.h"

using namespace lf;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name) { return std::string(LF_FIXTURES_DIR) + "/io/" + name; }

// The formulas of tools/make_io_fixtures.py and tools/make_pt_fixture_torch.py.
float formula(int seed, int64_t i) { return float((i * 37 + seed * 101) % 211 - 105) / 16.0f; }
float formula_fp8(int seed, int64_t i) { return float((i * 5 + seed) % 15 - 7) / 4.0f; }
int64_t int_formula(int64_t i) { return i * 1000003 - 5; }

template <typename Function>
std::string error_message(Function&& function) {
  try {
    function();
  } catch (const Error& error) {
    return error.what();
  }
  return "<no lf::Error was thrown>";
}

// The statement must throw lf::Error whose one-line message contains every given part.
#define CHECK_LF_ERROR(statement, ...)                                                                    \
  do {                                                                                                    \
    const std::string message_ = error_message([&] { (void)(statement); });                               \
    CHECK_MESSAGE(message_.find('\n') == std::string::npos, "multi-line error: " << message_);            \
    const std::vector<std::string> parts_{__VA_ARGS__};                                                   \
    for (const std::string& part_ : parts_)                                                               \
      CHECK_MESSAGE(message_.find(part_) != std::string::npos, "'" << part_ << "' not in: " << message_); \
  } while (0)

// A string literal with its embedded NULs.
template <size_t N>
std::string bytes(const char (&text)[N]) {
  return std::string(text, N - 1);
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string le64_bytes(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(value >> (8 * i));
  return out;
}

// A safetensors file with `header` verbatim and `data_size` bytes of data.
std::string safetensors_bytes(const std::string& header, size_t data_size) {
  return le64_bytes(header.size()) + header + std::string(data_size, '\x11');
}

std::vector<float> as_f32(const Tensor& tensor) {
  const Tensor converted = tensor.to(DType::F32);
  return std::vector<float>(converted.f32(), converted.f32() + converted.numel());
}

void check_formula(const Checkpoint& checkpoint, const std::string& name, DType dtype, const Shape& shape, int seed,
                   int64_t first = 0) {
  INFO(name);
  const Tensor tensor = checkpoint.view(name);
  CHECK(tensor.dtype() == dtype);
  CHECK(tensor.shape() == shape);
  const std::vector<float> values = as_f32(tensor);
  for (size_t i = 0; i < values.size(); ++i)
    CHECK(values[i] ==
          (dtype == DType::F8E4M3 ? formula_fp8(seed, first + int64_t(i)) : formula(seed, first + int64_t(i))));
}

void check_int_formula(const Checkpoint& checkpoint, const std::string& name) {
  const Tensor tensor = checkpoint.view(name);
  REQUIRE(tensor.dtype() == DType::I64);
  for (int64_t i = 0; i < tensor.numel(); ++i) CHECK(static_cast<const int64_t*>(tensor.raw())[i] == int_formula(i));
}

std::vector<std::string> names_of(const Checkpoint& checkpoint) {
  std::vector<std::string> names;
  for (const TensorEntry& entry : checkpoint.entries()) names.push_back(entry.name);
  return names;
}

bool leftover_files(const std::string& final_path) {
  const std::string prefix = fs::path(final_path).filename().string();
  for (const auto& entry : fs::directory_iterator(fs::path(final_path).parent_path()))
    if (entry.path().filename().string().rfind(prefix, 0) == 0) return true;
  return false;
}

Tensor int_tensor(const Shape& shape, DType dtype) {
  Tensor tensor = Tensor::empty(shape, dtype);
  auto* bytes = static_cast<uint8_t*>(tensor.raw());
  for (size_t i = 0; i < tensor.nbytes(); ++i) bytes[i] = uint8_t(i * 73 + 5);
  if (dtype == DType::Bool)
    for (size_t i = 0; i < tensor.nbytes(); ++i) bytes[i] &= 1;
  return tensor;
}

}  // namespace

// --- safetensors ------------------------------------------------------------------------------------------------

TEST_CASE("safetensors round trip keeps every dtype bit-exact") {
  const std::string path = test::tmp_path("round_trip.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  const DType float_types[] = {DType::F32, DType::F16, DType::BF16, DType::F8E4M3, DType::F64};
  uint64_t seed = 100;
  for (DType dtype : float_types) {
    const Tensor source = test::random_tensor({3, 5, 7}, seed++, 4.0f).to(dtype);
    int nonzero = 0;
    for (float value : as_f32(source)) nonzero += value != 0.0f;
    REQUIRE(nonzero > source.numel() / 2);  // fresh data, not a zero buffer that would pass trivially
    tensors.emplace_back(std::string("float.") + dtype_name(dtype), source);
  }
  for (DType dtype : {DType::I64, DType::I32, DType::I16, DType::I8, DType::U8, DType::Bool})
    tensors.emplace_back(std::string("int.") + dtype_name(dtype), int_tensor({2, 9}, dtype));
  tensors.emplace_back("scalar", test::random_tensor({}, 7));
  tensors.emplace_back("empty", Tensor::empty({0, 3}, DType::BF16));
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "round trip \u00e9"}};
  write_safetensors(path, tensors, metadata);

  const std::string bytes = read_bytes(path);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | uint8_t(bytes[size_t(i)]);
  CHECK(header_size % 8 == 0);

  std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path);
  CHECK(checkpoint->format() == "safetensors");
  CHECK(checkpoint->metadata() == metadata);
  REQUIRE(checkpoint->entries().size() == tensors.size());
  size_t previous_size = 8;
  for (const TensorEntry& entry : checkpoint->entries()) {  // laid out by decreasing element size
    CHECK(dtype_size(entry.dtype) <= previous_size);
    previous_size = dtype_size(entry.dtype);
  }
  std::vector<Tensor> views;
  for (const auto& [name, source] : tensors) {
    INFO(name);
    REQUIRE(checkpoint->contains(name));
    const Tensor view = checkpoint->view(name);
    CHECK(view.dtype() == source.dtype());
    CHECK(view.shape() == source.shape());
    REQUIRE(view.nbytes() == source.nbytes());
    CHECK(std::memcmp(view.raw(), source.raw(), source.nbytes()) == 0);
    CHECK(reinterpret_cast<uintptr_t>(view.raw()) % dtype_size(view.dtype()) == 0);
    if (dtype_is_float(source.dtype())) CHECK(as_f32(view) == as_f32(source));
    views.push_back(view);
  }
  CHECK(checkpoint->view("float.f32").raw() == views[0].raw());  // zero-copy: the same bytes of the map
  checkpoint.reset();                                            // views keep the mapping alive on their own
  CHECK(as_f32(views[0]) == as_f32(tensors[0].second));
}

TEST_CASE("safetensors written by the reference layout reads back with its metadata and order") {
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(fixture("reference.safetensors"));
  CHECK(names_of(*checkpoint) == std::vector<std::string>{"e.i64", "c.f32", "a.bf16", "b.f16", "d.f8", "f.bool"});
  CHECK(checkpoint->metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"source", "make_io_fixtures"}});
  check_formula(*checkpoint, "a.bf16", DType::BF16, {2, 3}, 1);
  check_formula(*checkpoint, "b.f16", DType::F16, {4}, 2);
  check_formula(*checkpoint, "c.f32", DType::F32, {2, 2}, 3);
  check_formula(*checkpoint, "d.f8", DType::F8E4M3, {5}, 4);
  check_int_formula(*checkpoint, "e.i64");
  CHECK(as_f32(checkpoint->view("f.bool")) == std::vector<float>{1, 0, 1});
  CHECK_LF_ERROR(checkpoint->view("missing.weight"), "missing.weight", "reference.safetensors");
}

TEST_CASE("a safetensors tensor at an unaligned offset comes back as an aligned copy") {
  std::string header = R"({"b":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]},)"
                       R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const float values[2] = {1.5f, -2.25f};
  std::string data(1, '\x01');
  data.append(reinterpret_cast<const char*>(values), 8);
  const std::string path = test::tmp_path("unaligned.safetensors");
  write_bytes(path, le64_bytes(header.size()) + header + data);
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path);
  const Tensor tensor = checkpoint->view("f");
  CHECK(reinterpret_cast<uintptr_t>(tensor.raw()) % 4 == 0);
  CHECK(tensor.f32()[0] == 1.5f);
  CHECK(tensor.f32()[1] == -2.25f);
}

TEST_CASE("safetensors header defects are refused with the path and the reason") {
  const std::string path = test::tmp_path("bad.safetensors");
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]})";
  auto check_refused = [&](const std::string& bytes, std::initializer_list<std::string_view> parts) {
    write_bytes(path, bytes);
    const std::string message = error_message([&] { SafetensorsCheckpoint::open(path); });
    CHECK_MESSAGE(message.find(path) != std::string::npos, message);
    for (std::string_view part : parts) CHECK_MESSAGE(message.find(part) != std::string::npos, message);
  };
  check_refused("\x10\0\0", {"too short"});
  check_refused(le64_bytes(4096) + "{}", {"header length 4096", "runs past the end"});
  check_refused(le64_bytes(uint64_t(1) << 40) + "{}", {"exceeds", "limit"});
  check_refused(safetensors_bytes("{" + ok_entry, 16), {"not valid JSON"});
  check_refused(safetensors_bytes("[1, 2]", 0), {"expected an object"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1),
                {"tensor 'w'", "unknown dtype 'F4'"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8),
                {"tensor 'w'", "outside the 8-byte data section"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[8,4]}})", 16), {"outside"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16),
                {"tensor 'w'", "size mismatch", "needs 24"});
  check_refused(safetensors_bytes("{" + ok_entry + R"(,"v":{"dtype":"F16","shape":[4],"data_offsets":[12,20]}})", 24),
                {"'w'", "'v'", "overlap"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                {"not a non-negative integer"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", 8), {"data_offsets"});
  check_refused(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
                {"too large"});
  check_refused(safetensors_bytes("{" + ok_entry + "," + ok_entry + "}", 16), {"'w' appears twice"});
  check_refused(safetensors_bytes("{" + ok_entry + R"(,"__metadata__":{"n":3}})", 16), {"__metadata__", "'n'"});

  // A valid file cut short: the data section no longer holds the tensor.
  write_safetensors(path, {{"w", test::random_tensor({4, 4}, 3)}});
  const std::string whole = read_bytes(path);
  check_refused(whole.substr(0, whole.size() - 10), {"tensor 'w'", "outside"});
  check_refused(whole.substr(0, 12), {"runs past the end"});
}

TEST_CASE("the safetensors writer leaves nothing behind when it fails") {
  const std::string path = test::tmp_path("failed_write.safetensors");
  std::remove(path.c_str());
  const Tensor tensor = test::random_tensor({2, 2}, 5);
  CHECK_LF_ERROR(write_safetensors(path, {{"a", tensor}, {"a", tensor}}), "'a' given twice", path);
  CHECK_LF_ERROR(write_safetensors(path, {{"__metadata__", tensor}}), "__metadata__");
  CHECK_LF_ERROR(write_safetensors(path, {{"", tensor}}), "empty tensor name");
  CHECK_LF_ERROR(write_safetensors(path, {{"undefined", Tensor()}}), "'undefined' has no data");
  CHECK_LF_ERROR(write_safetensors(path, {{std::string("bad\xff") + "utf8", tensor}}), "cannot encode header");
  CHECK_FALSE(leftover_files(path));
  const std::string missing_dir = test::tmp_path("no_such_dir/out.safetensors");
  CHECK_LF_ERROR(write_safetensors(missing_dir, {{"a", tensor}}), "no_such_dir", "does not exist");
  CHECK_FALSE(fs::exists(missing_dir));

  // An existing file is replaced only by a complete one.
  write_safetensors(path, {{"old", tensor}});
  CHECK_LF_ERROR(write_safetensors(path, {{"a", tensor}, {"a", tensor}}), "given twice");
  CHECK(names_of(*Checkpoint::open(path)) == std::vector<std::string>{"old"});
}

TEST_CASE("opening by content: missing, empty, legacy and unknown files name the path") {
  CHECK_LF_ERROR(Checkpoint::open(test::tmp_path("does_not_exist.pt")), "cannot open", "does_not_exist.pt");
  CHECK_LF_ERROR(Checkpoint::open(LF_TEST_TMP), "not a regular file");
  const std::string path = test::tmp_path("content.bin");
  write_bytes(path, "");
  CHECK_LF_ERROR(Checkpoint::open(path), "is empty", path);
  write_bytes(path, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15));
  CHECK_LF_ERROR(Checkpoint::open(path), "legacy", path);
  write_bytes(path, "this is a plain text file, not weights\n");
  CHECK_LF_ERROR(Checkpoint::open(path), "safetensors", path);
  // A safetensors file saved as ".pt" is still read as safetensors: the extension is not trusted.
  const std::string renamed = test::tmp_path("really_safetensors.pt");
  write_safetensors(renamed, {{"w", test::random_tensor({3}, 9)}});
  CHECK(Checkpoint::open(renamed)->format() == "safetensors");
}

// --- PyTorch zip checkpoints --------------------------------------------------------------------------------------

TEST_CASE("a torch.save state dict flattens to dotted names with exact values") {
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(fixture("state_dict.pt"));
  CHECK(checkpoint->format() == "pytorch-zip");
  const std::vector<std::string> expected = {"generator.model.blocks.0.self_attn.q.weight",
                                             "generator.model.blocks.0.self_attn.q.bias",
                                             "generator.model.blocks.0.norm.weight",
                                             "generator.model.blocks.0.ffn.fc1.weight",
                                             "generator.model.pos_ids",
                                             "generator.model.head.weight",
                                             "generator_ema.model.blocks.0.self_attn.q.weight",
                                             "generator_ema.model.blocks.0.self_attn.k.weight",
                                             "generator_ema.model.scale",
                                             "generator_ema.model.empty",
                                             "generator_ema.model.blocks.0.ffn.fc1.weight",
                                             "optimizer.state.0.exp_avg"};
  CHECK(names_of(*checkpoint) == expected);  // ints, floats, lists, bytes and _metadata are not tensors

  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.q.weight", DType::BF16, {4, 8}, 1);
  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.q.bias", DType::F32, {8}, 2);
  check_formula(*checkpoint, "generator.model.blocks.0.norm.weight", DType::F16, {8}, 3);
  // float8 as torch 2.x writes it (_rebuild_tensor_v3, UntypedStorage) and as a typed Float8_e4m3fnStorage.
  check_formula(*checkpoint, "generator.model.blocks.0.ffn.fc1.weight", DType::F8E4M3, {2, 16}, 4);
  check_formula(*checkpoint, "generator_ema.model.blocks.0.ffn.fc1.weight", DType::F8E4M3, {4, 4}, 5);
  check_int_formula(*checkpoint, "generator.model.pos_ids");
  check_formula(*checkpoint, "generator.model.head.weight", DType::F32, {3, 4}, 5);  // an nn.Parameter
  // Two views of one storage; the second starts 32 elements in.
  check_formula(*checkpoint, "generator_ema.model.blocks.0.self_attn.q.weight", DType::F32, {4, 8}, 11, 0);
  check_formula(*checkpoint, "generator_ema.model.blocks.0.self_attn.k.weight", DType::F32, {4, 8}, 11, 32);
  CHECK(as_f32(checkpoint->view("generator_ema.model.scale")) == std::vector<float>{0.5f});
  CHECK(checkpoint->view("generator_ema.model.scale").shape().empty());
  CHECK(checkpoint->view("generator_ema.model.empty").shape() == Shape{0, 4});
  check_formula(*checkpoint, "optimizer.state.0.exp_avg", DType::F32, {8}, 7);

  const Tensor weight = checkpoint->view("generator.model.blocks.0.self_attn.q.weight");
  CHECK(reinterpret_cast<uintptr_t>(weight.raw()) % 64 == 0);  // records are 64-byte aligned in the file
  CHECK(checkpoint->view("generator.model.blocks.0.self_attn.q.weight").raw() == weight.raw());
  CHECK_LF_ERROR(checkpoint->view("generator.model.blocks.1.self_attn.q.weight"), "blocks.1", "state_dict.pt");
  CHECK_FALSE(checkpoint->contains("generator._metadata"));
}

TEST_CASE("ZIP64 checkpoints: full ZIP64 records and zipfile's force_zip64 local headers") {
  for (const char* name : {"state_dict_zip64.pt", "state_dict_force_zip64.pt"}) {
    INFO(name);
    const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(fixture(name));
    CHECK(names_of(*checkpoint) == std::vector<std::string>{"generator.w", "generator.b"});
    check_formula(*checkpoint, "generator.w", DType::BF16, {4, 8}, 1);
    check_formula(*checkpoint, "generator.b", DType::F32, {8}, 2);
  }
  const ZipReader zip(MappedFile::open(fixture("state_dict_zip64.pt")));
  REQUIRE(zip.find("ckpt/data/1") != nullptr);
  CHECK(zip.find("ckpt/data/1")->local_header_offset > 0);
  CHECK(zip.stored_data(*zip.find("ckpt/data/1")).size() == 32);
  CHECK(zip.find("ckpt/nothing") == nullptr);
}

TEST_CASE("malicious pickles are refused by name and never executed") {
  const struct {
    const char* file;
    const char* global;
    const char* marker;
  } cases[] = {{"malicious_os_system.pt", "forbidden global 'os.system'", "/tmp/lf_io_fixture_pwned_os_system"},
               {"malicious_eval.pt", "forbidden global 'builtins.eval'", "/tmp/lf_io_fixture_pwned_eval"}};
  for (const auto& test : cases) {
    std::remove(test.marker);
    const std::string path = fixture(test.file);
    CHECK_LF_ERROR(Checkpoint::open(path), test.global, "pickle in '" + path + ":ckpt/data.pkl'");
    CHECK_FALSE(fs::exists(test.marker));
  }
}

TEST_CASE("damaged and unsupported checkpoints give one-line errors naming the problem") {
  CHECK_LF_ERROR(Checkpoint::open(fixture("truncated.pt")), "end of central directory not found", "truncated.pt");
  CHECK_LF_ERROR(Checkpoint::open(fixture("corrupt_crc.pt")), "ckpt/data.pkl", "CRC");
  CHECK_LF_ERROR(Checkpoint::open(fixture("corrupt_central_directory.pt")), "central directory", "outside the file");
  CHECK_LF_ERROR(Checkpoint::open(fixture("deflated.pt")), "'ckpt/data/0'", "compressed (method 8)");
  CHECK_LF_ERROR(Checkpoint::open(fixture("storage_out_of_bounds.pt")), "tensor 'w'", "runs past its storage");
  CHECK_LF_ERROR(Checkpoint::open(fixture("storage_missing.pt")), "tensor 'w'", "'ckpt/data/0' is missing");
  CHECK_LF_ERROR(Checkpoint::open(fixture("duplicate_names.pt")), "two tensors are named 'a.b'");
  CHECK_LF_ERROR(Checkpoint::open(fixture("byteorder_big.pt")), "byteorder is 'big'");
  CHECK_LF_ERROR(Checkpoint::open(fixture("cyclic.pt")), "nested deeper than 64");
  CHECK_LF_ERROR(Checkpoint::open(fixture("shared_reference_bomb.pt")), "object graph too large");

  // A transposed tensor can be listed, but reading it as row-major would be wrong.
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(fixture("noncontiguous.pt"));
  CHECK(names_of(*checkpoint) == std::vector<std::string>{"w_t", "ok"});
  CHECK(checkpoint->entries()[0].shape == Shape{4, 3});
  CHECK_LF_ERROR(checkpoint->view("w_t"), "tensor 'w_t'", "not contiguous", "stride [1, 4]");
  check_formula(*checkpoint, "ok", DType::F32, {3}, 2);

  const ZipReader zip(MappedFile::open(fixture("deflated.pt")));
  REQUIRE(zip.find("ckpt/data/0") != nullptr);
  CHECK(zip.find("ckpt/data/0")->method == 8);
  CHECK(zip.stored_data(*zip.find("ckpt/data.pkl")).size() > 0);
}

TEST_CASE("a state dict written by the real torch.save") {
  const std::string path = fixture("torch_real_state_dict.pt");
  // A missing fixture fails: a skip that passes would hide that the check never ran.
  REQUIRE_MESSAGE(fs::exists(path), path << " is missing (run tools/make_pt_fixture_torch.py where PyTorch is installed)");
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path);
  CHECK(checkpoint->format() == "pytorch-zip");
  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.q.weight", DType::BF16, {4, 8}, 1);
  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.q.bias", DType::F32, {8}, 2);
  check_formula(*checkpoint, "generator.model.blocks.0.norm.weight", DType::F16, {8}, 3);
  check_formula(*checkpoint, "generator.model.blocks.0.ffn.fc1.weight", DType::F8E4M3, {2, 16}, 4);
  check_int_formula(*checkpoint, "generator.model.pos_ids");
  check_formula(*checkpoint, "generator.model.head.weight", DType::F32, {3, 4}, 5);
  CHECK(reinterpret_cast<uintptr_t>(checkpoint->view("generator.model.pos_ids").raw()) % 64 == 0);
  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.k.weight", DType::BF16, {4, 8}, 7, 0);
  check_formula(*checkpoint, "generator.model.blocks.0.self_attn.v.weight", DType::BF16, {4, 8}, 7, 32);
  CHECK(as_f32(checkpoint->view("generator.model.scale")) == std::vector<float>{0.5f});
  check_formula(*checkpoint, "generator_ema.weight", DType::F32, {4, 8}, 8);
  check_formula(*checkpoint, "generator_ema.bias", DType::F32, {4}, 9);
  for (const char* name : {"optimizer.state.0.exp_avg", "optimizer.state.0.exp_avg_sq"}) {
    REQUIRE(checkpoint->contains(name));
    CHECK(checkpoint->view(name).shape() == Shape{4, 8});
  }
  CHECK(checkpoint->contains("optimizer.state.1.exp_avg"));
}

TEST_CASE("a safetensors file written by the reference Python library") {
  const std::string path = fixture("torch_real.safetensors");
  REQUIRE_MESSAGE(fs::exists(path), path << " is missing (run tools/make_pt_fixture_torch.py where torch and "
                  "safetensors are)");
  const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path);
  CHECK(checkpoint->format() == "safetensors");
  CHECK(checkpoint->metadata().at("writer") == "make_pt_fixture_torch");
  CHECK(checkpoint->entries().size() == 9);
  check_formula(*checkpoint, "model.blocks.0.self_attn.q.weight", DType::BF16, {4, 8}, 1);
  check_formula(*checkpoint, "model.blocks.0.self_attn.q.bias", DType::F32, {8}, 2);
  check_formula(*checkpoint, "model.blocks.0.norm.weight", DType::F16, {8}, 3);
  check_formula(*checkpoint, "model.blocks.0.ffn.fc1.weight", DType::F8E4M3, {2, 16}, 4);
  check_formula(*checkpoint, "model.head.weight", DType::F32, {3, 4}, 5);
  check_formula(*checkpoint, "model.blocks.0.self_attn.k.weight", DType::BF16, {4, 8}, 7);
  check_int_formula(*checkpoint, "model.pos_ids");
  CHECK(as_f32(checkpoint->view("model.scale")) == std::vector<float>{0.5f});
  CHECK(as_f32(checkpoint->view("model.mask")) == std::vector<float>{1, 0, 1});
}

// --- the unpickler and the zip reader on their own ----------------------------------------------------------------

namespace {

const PickleValue* dict_get(const PickleValue& dict, const std::string& key) {
  for (const auto& [k, v] : dict.dict)
    if (k->kind == PickleKind::String && k->text == key) return v;
  return nullptr;
}

PickleDocument unpickle_text(const std::string& bytes, const PickleLimits& limits = {}) {
  return unpickle_restricted({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "test.pkl", limits);
}

}  // namespace

TEST_CASE("unpickler reads what CPython's pickler writes with protocols 2 and 5") {
  for (const char* file : {"plain_protocol2.pkl", "plain_protocol5.pkl"}) {
    INFO(file);
    const PickleDocument document = unpickle_text(read_bytes(fixture(file)));
    const PickleValue& root = document.root();
    REQUIRE(root.kind == PickleKind::Dict);
    CHECK(root.dict.size() == 13);
    CHECK(dict_get(root, "i")->integer == -3);
    CHECK(dict_get(root, "big")->integer == -(int64_t(1) << 40));
    CHECK(dict_get(root, "k")->integer == 70000);
    CHECK(dict_get(root, "f")->real == 1.5);
    CHECK(dict_get(root, "s")->text == "text");
    CHECK(dict_get(root, "b")->kind == PickleKind::Bytes);
    CHECK(dict_get(root, "b")->text == std::string("\0\1", 2));
    const PickleValue* list = dict_get(root, "l");
    REQUIRE(list->kind == PickleKind::List);
    REQUIRE(list->items.size() == 3);
    CHECK(list->items[2]->integer == 3);
    const PickleValue* tuple = dict_get(root, "t");
    REQUIRE(tuple->kind == PickleKind::Tuple);
    CHECK(tuple->items[1]->text == "x");
    CHECK(tuple->items[2]->kind == PickleKind::None);
    CHECK(dict_get(root, "tr")->boolean);
    CHECK(root.dict[9].first->kind == PickleKind::Int);  // the int key 7
    CHECK(root.dict[9].first->integer == 7);
    CHECK(dict_get(root, "od")->kind == PickleKind::Dict);
    CHECK(dict_get(root, "e")->items.empty());
    CHECK(dict_get(root, "u")->text == "\u00e9");
  }
}

TEST_CASE("unpickler handles the long and rare forms of its opcodes") {
  // Literals are split where a hex escape would otherwise swallow the next character.
  // clang-format off
  const std::string stream = bytes(
      "\x80\x04("                              // PROTO 4, MARK
      "\x8d\x02\0\0\0\0\0\0\0" "ab"           // BINUNICODE8
      "\x8e\x01\0\0\0\0\0\0\0\x07"           // BINBYTES8
      "T\x01\0\0\0" "c"                       // BINSTRING
      "U\x01" "d"                             // SHORT_BINSTRING
      "M\x34\x12"                             // BININT2
      "B\x01\0\0\0\x09"                       // BINBYTES
      "r\x00\x01\x00\x00" "j\x00\x01\x00\x00"  // LONG_BINPUT 256, LONG_BINGET 256
      "ccollections\nOrderedDict\n)\x81"       // GLOBAL, EMPTY_TUPLE, NEWOBJ
      "(X\x01\0\0\0" "kK\x01" "d"              // MARK, BINUNICODE, BININT1, DICT
      "N\x85" "l.");                          // NONE, TUPLE1, LIST, STOP
  // clang-format on
  const PickleDocument document = unpickle_text(stream);
  const PickleValue& list = document.root();
  REQUIRE(list.kind == PickleKind::List);
  REQUIRE(list.items.size() == 10);
  CHECK(list.items[0]->text == "ab");
  CHECK(list.items[1]->text == "\x07");
  CHECK(list.items[2]->text == "c");
  CHECK(list.items[3]->text == "d");
  CHECK(list.items[4]->integer == 0x1234);
  CHECK(list.items[6] == list.items[5]);  // LONG_BINGET returns the memoised object itself
  CHECK(list.items[7]->kind == PickleKind::Dict);
  CHECK(list.items[8]->dict.size() == 1);
  CHECK(list.items[9]->items[0]->kind == PickleKind::None);
}

TEST_CASE("unpickler refuses hostile and malformed streams with the opcode and offset") {
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x04\x8f.")), "pickle in 'test.pkl'", "0x8f (EMPTY_SET)", "offset 2");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02\xff.")), "unsupported opcode 0xff");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02"
                                     "cposix\nsystem\nX\x02\0\0\0"
                                     "ls\x85R.")),
                 "forbidden global 'posix.system'");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02"
                                     "c__builtin__\nset\n.")),
                 "forbidden global '__builtin__.set'");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02"
                                     "ctorch\nFloatStorage\n)R.")),
                 "'torch.FloatStorage' cannot be called");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02"
                                     "ctorch._utils\n_rebuild_tensor_v2\n)R.")),
                 "unexpected arguments (0) to 'torch._utils._rebuild_tensor_v2'");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02X\xff\0\0\0"
                                     "ab")),
                 "truncated");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02N")), "without a STOP");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02R.")), "stack underflow");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02(R.")), "stack underflow");  // REDUCE may not reach below a MARK
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02h\x05.")), "memo entry 5 is not defined");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02}Na.")), "APPEND target must be a list, found a dict");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02}NNs.")), "dict key is a None");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02(X\x07\0\0\0"
                                     "storage"
                                     "ccollections\nOrderedDict\n"
                                     "X\x01\0\0\0"
                                     "0X\x03\0\0\0"
                                     "cpuK\x01tQ.")),
                 "'collections.OrderedDict' is not a storage type");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x06N.")), "unsupported pickle protocol 6");
  CHECK_LF_ERROR(unpickle_text(std::string(5000, '(') + "N."), "more than 4096 nested MARKs");
  CHECK_LF_ERROR(unpickle_text(std::string(20, 'N') + ".", PickleLimits{.max_values = 10}), "more than 10 values");
  CHECK_LF_ERROR(unpickle_text(bytes("\x80\x02\x8a\x09") + std::string(9, '\1') + "."), "9 bytes does not fit");
  CHECK(unpickle_text(bytes("\x80\x02(N.")).root().kind == PickleKind::None);  // STOP may leave a MARK, as in CPython
  // A list that contains itself parses (the arena owns it) without recursion.
  const PickleDocument cyclic =
      unpickle_text(bytes("\x80\x02]q\x00h\x00"
                          "a."));
  CHECK(cyclic.root().items.at(0) == &cyclic.root());
}

TEST_CASE("zip reader: CRC-32 and a file that is not a zip") {
  const std::string check = "123456789";
  CHECK(crc32({reinterpret_cast<const uint8_t*>(check.data()), check.size()}) == 0xcbf43926u);
  const std::string path = test::tmp_path("not_a.zip");
  write_bytes(path, std::string(100, 'x'));
  CHECK_LF_ERROR(ZipReader(MappedFile::open(path)), "zip '" + path + "'", "end of central directory not found");
  write_bytes(path, "PK");
  CHECK_LF_ERROR(ZipReader(MappedFile::open(path)), "too short");
}

// Parsers must turn any damage into lf::Error: no crash, no out-of-bounds read (run under LF_SANITIZE too), and no
// other exception type escaping.
TEST_CASE("corrupted bytes anywhere give lf::Error, never a crash") {
  const std::string zip_bytes = read_bytes(fixture("state_dict.pt"));
  const ZipReader zip(MappedFile::open(fixture("state_dict.pt")));
  const std::span<const uint8_t> pickle = zip.stored_data(*zip.find("ckpt/data.pkl"));
  const std::string original(reinterpret_cast<const char*>(pickle.data()), pickle.size());
  int parsed = 0, refused = 0;
  auto attempt = [&](auto&& function) {
    try {
      function();
      ++parsed;
    } catch (const Error&) {
      ++refused;
    }
  };
  for (size_t i = 0; i < original.size(); ++i) {
    for (uint8_t replacement : {uint8_t(0), uint8_t(0xff), uint8_t(original[i] ^ 0x80), uint8_t(original[i] + 1)}) {
      std::string mutated = original;
      mutated[i] = char(replacement);
      attempt([&] { unpickle_text(mutated); });
    }
  }
  for (size_t size = 0; size < original.size(); ++size) attempt([&] { unpickle_text(original.substr(0, size)); });

  // Whole files: every byte flipped, and every truncation, read through the public interface.
  auto read_everything = [&](const std::string& bytes) {
    const std::string path = test::tmp_path("mutated.bin");
    write_bytes(path, bytes);
    attempt([&] {
      const std::unique_ptr<Checkpoint> checkpoint = Checkpoint::open(path);
      for (const TensorEntry& entry : checkpoint->entries()) {
        try {
          (void)as_f32(checkpoint->view(entry.name));
        } catch (const Error&) {  // a view may be refused on its own (non-contiguous)
        }
      }
    });
  };
  write_safetensors(test::tmp_path("mutation_source.safetensors"),
                    {{"a", test::random_tensor({3, 4}, 1).to(DType::BF16)}, {"b", test::random_tensor({5}, 2)}});
  const std::string safetensors = read_bytes(test::tmp_path("mutation_source.safetensors"));
  for (const std::string& source : {zip_bytes, safetensors}) {
    for (size_t i = 0; i < source.size(); ++i) {
      std::string mutated = source;
      mutated[i] = char(~mutated[i]);
      read_everything(mutated);
    }
    for (size_t size = 0; size < source.size(); size += 7) read_everything(source.substr(0, size));
  }
  CHECK(parsed > 0);
  CHECK(refused > 0);
}
