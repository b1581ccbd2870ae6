#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace lf {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; the regular-file check
  // below then refuses it. It has no effect on regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  LF_CHECK(fd >= 0, "cannot open '{}': {}", path, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int saved = errno;
    ::close(fd);
    fail("cannot stat '{}': {}", path, std::strerror(saved));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail("cannot read '{}': not a regular file", path);
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = size_t(info.st_size);
  if (file->size_ > 0) {
    // PROT_READ: a view that is written to by mistake faults instead of silently diverging from the file.
    void* address = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const int saved = errno;
      ::close(fd);
      fail("cannot map '{}' ({} bytes): {}", path, file->size_, std::strerror(saved));
    }
    file->data_ = static_cast<const uint8_t*>(address);
  }
  ::close(fd);  // the mapping keeps its own reference to the file
  return file;
}

std::shared_ptr<const MappedFile> MappedFile::wrap_static(const std::string& name, std::span<const uint8_t> bytes) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = name;
  file->data_ = bytes.data();
  file->size_ = bytes.size();
  file->mapped_ = false;
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr && mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace lf
