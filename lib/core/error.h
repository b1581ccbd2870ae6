#pragma once
// Errors carry their context (file, key, expected vs found) in one line; main() prints what() and exits 1.
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace lf {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace lf

// Checks that stay on in release builds: a wrong shape must never turn into a silent out-of-bounds read.
#define LF_CHECK(cond, ...)                  \
  do {                                       \
    if (!(cond)) ::lf::fail(__VA_ARGS__);    \
  } while (0)
