#pragma once
// SHA-256 (FIPS 180-4) of bytes and of tensors: "same bytes" checks in reports (bench, batch manifests) without
// shipping the data. Hex digests, lowercase, as sha256sum prints them.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lf {

class Tensor;

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t bytes);
  std::string hex_digest();  // finishes the hash; the object is spent afterwards

 private:
  void compress(const uint8_t block[64]);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

std::string sha256_hex(const void* data, size_t bytes);
// Of a file's bytes, read in pieces (no whole-file buffer); an unreadable file is an lf::Error naming it.
std::string sha256_file_hex(const std::string& path);
// Of the tensor's bytes as stored (its dtype), copied to the host first when it lives on the GPU.
std::string sha256_hex(const Tensor& tensor);

}  // namespace lf
