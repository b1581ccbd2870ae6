#pragma once
// A minimal ZIP reader over a memory map, enough for PyTorch checkpoints: it walks the central directory
// (ZIP64 included, since real checkpoints exceed 4 GB) and hands out "stored" entries as spans of the map.
// Nothing is decompressed; PyTorch writes every record stored and 64-byte aligned.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"

namespace lf {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflated, ...
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

class ZipReader {
 public:
  // Reads the end-of-central-directory records and the central directory; throws lf::Error "zip '<path>': ..."
  // when they are missing (truncated file, not a zip) or point outside the file.
  explicit ZipReader(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;  // nullptr when absent

  // The bytes of a stored entry, located through its LOCAL header (whose extra field may differ from the
  // central one) and bounds-checked. A compressed or encrypted entry is an error naming it.
  std::span<const uint8_t> stored_data(const ZipEntry& entry) const;
  // As stored_data(), and also checks the CRC-32; meant for small records such as the pickle.
  std::span<const uint8_t> stored_data_checked(const ZipEntry& entry) const;

 private:
  void read_central_directory();

  std::shared_ptr<const MappedFile> file_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

uint32_t crc32(std::span<const uint8_t> bytes);

}  // namespace lf
