#include "io/zip_reader.h"

#include <array>
#include <cstring>

#include "core/error.h"

namespace lf {

namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralHeaderSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kEnd64Signature = 0x06064b50;
constexpr uint32_t kEnd64LocatorSignature = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kEnd64Size = 56;
constexpr size_t kEnd64LocatorSize = 20;
constexpr size_t kMaxCommentSize = 0xffff;
constexpr uint16_t kZip64ExtraId = 0x0001;

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }

// Replaces the 0xffffffff placeholders of a central header by the 64-bit values of its ZIP64 extra field,
// which lists only the fields that overflowed, in this fixed order.
void apply_zip64_extra(std::span<const uint8_t> extra, ZipEntry* entry, bool usize_overflow, bool csize_overflow,
                       bool offset_overflow, const std::string& path) {
  size_t at = 0;
  while (at + 4 <= extra.size()) {
    const uint16_t id = le16(&extra[at]);
    const uint16_t size = le16(&extra[at + 2]);
    LF_CHECK(at + 4 + size <= extra.size(), "zip '{}': entry '{}': extra field runs past its header", path,
             entry->name);
    if (id == kZip64ExtraId) {
      const uint8_t* field = &extra[at + 4];
      size_t used = 0;
      auto next = [&](uint64_t* out) {
        LF_CHECK(used + 8 <= size, "zip '{}': entry '{}': ZIP64 extra field is too short", path, entry->name);
        *out = le64(field + used);
        used += 8;
      };
      if (usize_overflow) next(&entry->uncompressed_size);
      if (csize_overflow) next(&entry->compressed_size);
      if (offset_overflow) next(&entry->local_header_offset);
      return;
    }
    at += 4 + size;
  }
  LF_CHECK(!usize_overflow && !csize_overflow && !offset_overflow,
           "zip '{}': entry '{}': sizes need a ZIP64 extra field, none found", path, entry->name);
}

}  // namespace

uint32_t crc32(std::span<const uint8_t> bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> entries{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t value = i;
      for (int bit = 0; bit < 8; ++bit) value = (value & 1) ? 0xedb88320u ^ (value >> 1) : value >> 1;
      entries[i] = value;
    }
    return entries;
  }();
  uint32_t crc = 0xffffffffu;
  for (uint8_t byte : bytes) crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return crc ^ 0xffffffffu;
}

ZipReader::ZipReader(std::shared_ptr<const MappedFile> file) : file_(std::move(file)) { read_central_directory(); }

void ZipReader::read_central_directory() {
  const std::string& path = file_->path();
  const uint8_t* data = file_->data();
  const size_t size = file_->size();
  LF_CHECK(size >= kEndSize, "zip '{}': file is {} bytes, too short to be a zip (truncated?)", path, size);

  // The end record sits in the last 22 bytes plus an optional comment of up to 64 KiB; search backwards.
  size_t end_at = SIZE_MAX;
  const size_t lowest = size > kEndSize + kMaxCommentSize ? size - kEndSize - kMaxCommentSize : 0;
  for (size_t at = size - kEndSize + 1; at-- > lowest;) {
    if (le32(data + at) == kEndSignature && at + kEndSize + le16(data + at + 20) <= size) {
      end_at = at;
      break;
    }
  }
  LF_CHECK(end_at != SIZE_MAX, "zip '{}': end of central directory not found (truncated or not a zip file)", path);
  const uint8_t* end = data + end_at;
  LF_CHECK(le16(end + 4) == 0 && le16(end + 6) == 0, "zip '{}': multi-disk archives are not supported", path);
  uint64_t entry_count = le16(end + 10);
  uint64_t directory_size = le32(end + 12);
  uint64_t directory_offset = le32(end + 16);
  uint64_t directory_limit = end_at;  // the central directory must end before the record that describes it

  if (end_at >= kEnd64LocatorSize && le32(data + end_at - kEnd64LocatorSize) == kEnd64LocatorSignature) {
    const uint8_t* locator = data + end_at - kEnd64LocatorSize;
    const uint64_t end64_at = le64(locator + 8);
    LF_CHECK(end64_at <= end_at - kEnd64LocatorSize && end_at - kEnd64LocatorSize - end64_at >= kEnd64Size &&
                 le32(data + end64_at) == kEnd64Signature,
             "zip '{}': ZIP64 end of central directory record missing or out of bounds (corrupt zip)", path);
    const uint8_t* end64 = data + end64_at;
    LF_CHECK(le32(end64 + 16) == 0 && le32(end64 + 20) == 0, "zip '{}': multi-disk archives are not supported", path);
    entry_count = le64(end64 + 32);
    directory_size = le64(end64 + 40);
    directory_offset = le64(end64 + 48);
    directory_limit = end64_at;
  } else {
    LF_CHECK(entry_count != 0xffff && directory_size != 0xffffffffu && directory_offset != 0xffffffffu,
             "zip '{}': ZIP64 archive without its ZIP64 end record (corrupt or truncated zip)", path);
  }
  LF_CHECK(directory_offset <= directory_limit && directory_size <= directory_limit - directory_offset,
           "zip '{}': central directory [{}, +{}) lies outside the file (corrupt or truncated zip)", path,
           directory_offset, directory_size);
  LF_CHECK(entry_count <= directory_size / kCentralHeaderSize,
           "zip '{}': {} entries cannot fit in a {}-byte central directory (corrupt zip)", path, entry_count,
           directory_size);

  const uint8_t* directory = data + directory_offset;
  size_t at = 0;
  entries_.reserve(size_t(entry_count));
  for (uint64_t i = 0; i < entry_count; ++i) {
    LF_CHECK(at + kCentralHeaderSize <= directory_size && le32(directory + at) == kCentralHeaderSignature,
             "zip '{}': central directory entry {} is damaged (corrupt zip)", path, i);
    const uint8_t* header = directory + at;
    const size_t name_size = le16(header + 28);
    const size_t extra_size = le16(header + 30);
    const size_t comment_size = le16(header + 32);
    LF_CHECK(at + kCentralHeaderSize + name_size + extra_size + comment_size <= directory_size,
             "zip '{}': central directory entry {} runs past the directory (corrupt zip)", path, i);
    ZipEntry entry;
    entry.flags = le16(header + 8);
    entry.method = le16(header + 10);
    entry.crc32 = le32(header + 16);
    entry.compressed_size = le32(header + 20);
    entry.uncompressed_size = le32(header + 24);
    entry.local_header_offset = le32(header + 42);
    entry.name.assign(reinterpret_cast<const char*>(header + kCentralHeaderSize), name_size);
    apply_zip64_extra({header + kCentralHeaderSize + name_size, extra_size}, &entry,
                      entry.uncompressed_size == 0xffffffffu, entry.compressed_size == 0xffffffffu,
                      entry.local_header_offset == 0xffffffffu, path);
    LF_CHECK(index_.emplace(entry.name, entries_.size()).second, "zip '{}': entry '{}' appears twice", path,
             entry.name);
    entries_.push_back(std::move(entry));
    at += kCentralHeaderSize + name_size + extra_size + comment_size;
  }
}

const ZipEntry* ZipReader::find(std::string_view name) const {
  const auto found = index_.find(std::string(name));
  return found == index_.end() ? nullptr : &entries_[found->second];
}

std::span<const uint8_t> ZipReader::stored_data(const ZipEntry& entry) const {
  const std::string& path = file_->path();
  LF_CHECK(entry.method == 0,
           "zip '{}': entry '{}' is compressed (method {}); only stored entries can be mapped (PyTorch writes "
           "checkpoints uncompressed)",
           path, entry.name, entry.method);
  LF_CHECK((entry.flags & 1) == 0, "zip '{}': entry '{}' is encrypted", path, entry.name);
  LF_CHECK(entry.compressed_size == entry.uncompressed_size,
           "zip '{}': stored entry '{}' has compressed size {} != size {} (corrupt zip)", path, entry.name,
           entry.compressed_size, entry.uncompressed_size);
  const size_t size = file_->size();
  const uint64_t local = entry.local_header_offset;
  LF_CHECK(local <= size && size - local >= kLocalHeaderSize && le32(file_->data() + local) == kLocalHeaderSignature,
           "zip '{}': local header of entry '{}' at offset {} is missing or outside the {}-byte file (corrupt or "
           "truncated zip)",
           path, entry.name, local, size);
  const uint8_t* header = file_->data() + local;
  const uint64_t name_size = le16(header + 26);
  const uint64_t extra_size = le16(header + 28);
  const uint64_t data_at = local + kLocalHeaderSize + name_size + extra_size;
  LF_CHECK(data_at <= size && entry.compressed_size <= size - data_at,
           "zip '{}': data of entry '{}' ([{}, +{})) runs past the end of the {}-byte file (truncated zip)", path,
           entry.name, data_at, entry.compressed_size, size);
  LF_CHECK(name_size == entry.name.size() &&
               std::memcmp(header + kLocalHeaderSize, entry.name.data(), entry.name.size()) == 0,
           "zip '{}': local header of entry '{}' names a different file (corrupt zip)", path, entry.name);
  return {file_->data() + data_at, size_t(entry.compressed_size)};
}

std::span<const uint8_t> ZipReader::stored_data_checked(const ZipEntry& entry) const {
  const std::span<const uint8_t> bytes = stored_data(entry);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  return bytes;  // fuzz builds only: a mutated pickle would almost never match its CRC (docs/fuzzing.md)
#endif
  const uint32_t actual = crc32(bytes);
  LF_CHECK(actual == entry.crc32, "zip '{}': entry '{}' fails its CRC check (stored {:08x}, computed {:08x}; corrupt)",
           file_->path(), entry.name, entry.crc32, actual);
  return bytes;
}

}  // namespace lf
