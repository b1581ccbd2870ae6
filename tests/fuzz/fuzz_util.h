#pragma once
// Shared by the libFuzzer harnesses: inputs as in-memory files, and reads of every byte a parser hands out so
// ASan sees any view that points outside the input.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace lf::fuzz {

// The input as a MappedFile that does not own the bytes (libFuzzer keeps them alive for the call).
inline std::shared_ptr<const MappedFile> memory_file(const uint8_t* data, size_t size) {
  return MappedFile::wrap_static("fuzz-input", std::span<const uint8_t>(data, size));
}

// Reads every byte; the empty asm that "uses" the sum keeps the compiler from dropping the loop.
inline void touch(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t byte : bytes) sum = uint8_t(sum + byte);
  __asm__ volatile("" : : "r"(sum));
}

inline void touch(const Tensor& tensor) {
  if (tensor.defined() && tensor.device() == Device::CPU)
    touch(std::span<const uint8_t>(static_cast<const uint8_t*>(tensor.raw()), size_t(tensor.nbytes())));
}

// Readers that only take a path (the noise and text-embedding readers) get the input through a memfd named
// "/proc/self/fd/N": a regular file in memory, rewritten for each input, so nothing touches the disk.
class MemoryPath {
 public:
  MemoryPath() : fd_(::memfd_create("lightforce-fuzz", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  const std::string& write(const uint8_t* data, size_t size) {
    if (::ftruncate(fd_, 0) != 0 || (size > 0 && ::pwrite(fd_, data, size, 0) != ssize_t(size))) {
      std::perror("memfd write");
      std::abort();
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

}  // namespace lf::fuzz
