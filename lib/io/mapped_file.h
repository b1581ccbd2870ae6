#pragma once
// A read-only memory map of a whole file. Weight tensors are views into it, so the mapping is owned by a
// shared_ptr that every view holds: the file stays mapped as long as any tensor still points into it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace lf {

class MappedFile {
 public:
  // Maps `path` read-only. Throws lf::Error naming the path when it is missing, unreadable or not a regular
  // file. An empty file maps to an empty span.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  // Bytes that live for the whole program (data compiled into the binary), named `name` in messages; not unmapped.
  static std::shared_ptr<const MappedFile> wrap_static(const std::string& name, std::span<const uint8_t> bytes);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = true;
};

}  // namespace lf
