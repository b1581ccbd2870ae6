#include "io/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"
#include "io/atomic_file.h"

namespace lf {

namespace {

using Json = nlohmann::ordered_json;  // keeps header order, which is the file's data order

uint64_t read_le64(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// numel * element size with overflow checks, so a hostile shape cannot wrap around the bounds checks.
bool checked_nbytes(const Shape& shape, size_t element_size, uint64_t* out) {
  uint64_t total = element_size;
  for (int64_t size : shape) {
    if (size < 0 || __builtin_mul_overflow(total, uint64_t(size), &total)) return false;
  }
  *out = total;
  return true;
}

struct Span {
  uint64_t begin, end;
  size_t entry;
};

}  // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(std::shared_ptr<const MappedFile> file)
    : Checkpoint(file->path()), file_(std::move(file)) {}

std::unique_ptr<SafetensorsCheckpoint> SafetensorsCheckpoint::open(const std::string& path) {
  return open(MappedFile::open(path));
}

std::unique_ptr<SafetensorsCheckpoint> SafetensorsCheckpoint::open(std::shared_ptr<const MappedFile> file) {
  std::unique_ptr<SafetensorsCheckpoint> checkpoint(new SafetensorsCheckpoint(std::move(file)));
  checkpoint->parse_header();
  return checkpoint;
}

void SafetensorsCheckpoint::parse_header() {
  const std::string& path = file_->path();
  const uint64_t file_size = file_->size();
  LF_CHECK(file_size >= 8, "safetensors '{}': file is {} bytes, too short for the 8-byte header length (truncated?)",
           path, file_size);
  const uint64_t header_size = read_le64(file_->data());
  LF_CHECK(header_size <= kSafetensorsMaxHeaderBytes,
           "safetensors '{}': header length {} exceeds the {}-byte limit (corrupt, or not a safetensors file)", path,
           header_size, kSafetensorsMaxHeaderBytes);
  LF_CHECK(header_size <= file_size - 8,
           "safetensors '{}': header length {} runs past the end of the {}-byte file (truncated, or not a "
           "safetensors file)",
           path, header_size, file_size);

  // Duplicate top-level keys would silently shadow each other in the JSON library; refuse them instead.
  std::unordered_set<std::string> seen_keys;
  std::string duplicate;
  const Json::parser_callback_t reject_duplicates = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && !seen_keys.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  const char* header_begin = reinterpret_cast<const char*>(file_->data() + 8);
  Json header;
  try {
    header = Json::parse(header_begin, header_begin + header_size, reject_duplicates);
  } catch (const nlohmann::json::exception& error) {
    fail("safetensors '{}': header is not valid JSON: {}", path, error.what());
  }
  LF_CHECK(duplicate.empty(), "safetensors '{}': tensor '{}' appears twice in the header", path, duplicate);
  LF_CHECK(header.is_object(), "safetensors '{}': header is a JSON {}, expected an object", path, header.type_name());

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  std::vector<Span> spans;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      LF_CHECK(info.is_object(), "safetensors '{}': __metadata__ is a JSON {}, expected an object of strings", path,
               info.type_name());
      for (const auto& [key, value] : info.items()) {
        LF_CHECK(value.is_string(), "safetensors '{}': __metadata__ value of '{}' is a JSON {}, expected a string",
                 path, key, value.type_name());
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    LF_CHECK(info.is_object(), "safetensors '{}': tensor '{}': entry is a JSON {}, expected an object", path, name,
             info.type_name());
    const auto dtype_it = info.find("dtype");
    const auto shape_it = info.find("shape");
    const auto offsets_it = info.find("data_offsets");
    LF_CHECK(dtype_it != info.end() && dtype_it->is_string(), "safetensors '{}': tensor '{}': missing string 'dtype'",
             path, name);
    LF_CHECK(shape_it != info.end() && shape_it->is_array(), "safetensors '{}': tensor '{}': missing array 'shape'",
             path, name);
    LF_CHECK(offsets_it != info.end() && offsets_it->is_array() && offsets_it->size() == 2 &&
                 (*offsets_it)[0].is_number_unsigned() && (*offsets_it)[1].is_number_unsigned(),
             "safetensors '{}': tensor '{}': 'data_offsets' must be two non-negative integers", path, name);

    TensorEntry entry{name, DType::F32, {}};
    const std::string dtype_name_text = dtype_it->get<std::string>();
    LF_CHECK(dtype_from_safetensors_name(dtype_name_text, &entry.dtype),
             "safetensors '{}': tensor '{}': unknown dtype '{}'", path, name, dtype_name_text);
    for (const Json& size : *shape_it) {
      LF_CHECK(size.is_number_unsigned() && size.get<uint64_t>() <= uint64_t(INT64_MAX),
               "safetensors '{}': tensor '{}': shape {} has an entry that is not a non-negative integer", path, name,
               shape_it->dump());
      entry.shape.push_back(int64_t(size.get<uint64_t>()));
    }
    uint64_t nbytes = 0;
    LF_CHECK(checked_nbytes(entry.shape, dtype_size(entry.dtype), &nbytes),
             "safetensors '{}': tensor '{}': shape {} is too large", path, name, shape_str(entry.shape));
    const uint64_t begin = (*offsets_it)[0].get<uint64_t>();
    const uint64_t end = (*offsets_it)[1].get<uint64_t>();
    LF_CHECK(begin <= end && end <= data_size,
             "safetensors '{}': tensor '{}': data_offsets [{}, {}] are outside the {}-byte data section", path, name,
             begin, end, data_size);
    LF_CHECK(end - begin == nbytes,
             "safetensors '{}': tensor '{}': data_offsets [{}, {}] hold {} bytes but {} {} needs {} (size mismatch)",
             path, name, begin, end, end - begin, dtype_name(entry.dtype), shape_str(entry.shape), nbytes);
    if (nbytes > 0) spans.push_back({begin, end, entries_.size()});
    index_[name] = entries_.size();
    data_begin_.push_back(size_t(data_start + begin));
    entries_.push_back(std::move(entry));
  }

  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i) {
    LF_CHECK(spans[i].begin >= spans[i - 1].end, "safetensors '{}': tensors '{}' [{}, {}] and '{}' [{}, {}] overlap",
             path, entries_[spans[i - 1].entry].name, spans[i - 1].begin, spans[i - 1].end,
             entries_[spans[i].entry].name, spans[i].begin, spans[i].end);
  }
}

Tensor SafetensorsCheckpoint::view(const std::string& name) const {
  const auto found = index_.find(name);
  LF_CHECK(found != index_.end(), "safetensors '{}': no tensor named '{}'", path(), name);
  const TensorEntry& entry = entries_[found->second];
  return map_tensor(file_, file_->data() + data_begin_[found->second], entry.shape, entry.dtype);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Everything is checked before the temporary file is created.
  std::unordered_set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    LF_CHECK(!name.empty(), "write safetensors '{}': empty tensor name", path);
    LF_CHECK(name != "__metadata__", "write safetensors '{}': '__metadata__' cannot be a tensor name", path);
    LF_CHECK(names.insert(name).second, "write safetensors '{}': tensor '{}' given twice", path, name);
    LF_CHECK(tensor.defined(), "write safetensors '{}': tensor '{}' has no data", path, name);
  }
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].second.dtype()) > dtype_size(tensors[b].second.dtype());
  });

  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (size_t i : order) {
    const Tensor& tensor = tensors[i].second;
    const uint64_t end = offset + tensor.nbytes();
    header[tensors[i].first] = Json{
        {"dtype", dtype_safetensors_name(tensor.dtype())}, {"shape", tensor.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& error) {  // names or metadata that are not valid UTF-8
    fail("write safetensors '{}': cannot encode header: {}", path, error.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  LF_CHECK(text.size() <= kSafetensorsMaxHeaderBytes, "write safetensors '{}': header of {} bytes is too large", path,
           text.size());

  AtomicFile output(path);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> handle(std::fopen(output.temp_path().c_str(), "wb"), std::fclose);
  LF_CHECK(handle != nullptr, "write safetensors '{}': cannot create '{}': {}", path, output.temp_path(),
           std::strerror(errno));
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  bool ok = std::fwrite(length, 1, 8, handle.get()) == 8 &&
            std::fwrite(text.data(), 1, text.size(), handle.get()) == text.size();
  for (size_t i = 0; ok && i < order.size(); ++i) {
    const Tensor& tensor = tensors[order[i]].second;
    ok = std::fwrite(tensor.raw(), 1, tensor.nbytes(), handle.get()) == tensor.nbytes();
  }
  LF_CHECK(ok, "write safetensors '{}': cannot write '{}': {}", path, output.temp_path(), std::strerror(errno));
  LF_CHECK(std::fclose(handle.release()) == 0, "write safetensors '{}': cannot close '{}': {}", path,
           output.temp_path(), std::strerror(errno));
  output.commit();
}

}  // namespace lf
