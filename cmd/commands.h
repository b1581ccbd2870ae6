#pragma once
// One function per subcommand; each parses its own flags. Exit codes: 0 ok, 1 runtime error, 2 usage error, and
// for batch / merge-manifests 3: the batch ran, but some entries failed (or are missing from the merge).
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace lf::cmd {

constexpr int kExitSomeEntriesFailed = 3;

// The command line itself is wrong, whatever the files and values it names hold: a required flag missing, a stray
// argument, flags that exclude each other, nothing to write. main() prints it like cxxopts' own parse errors and
// exits 2, so a script can tell "I called it wrong" from "the run failed" (1).
struct UsageError : Error {
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void usage_fail(fmt::format_string<Args...> format, Args&&... args) {
  throw UsageError(fmt::format(format, std::forward<Args>(args)...));
}

// LF_CHECK for the command line: a usage error (exit 2) when `cond` is false.
#define LF_USAGE_CHECK(cond, ...)                   \
  do {                                              \
    if (!(cond)) ::lf::cmd::usage_fail(__VA_ARGS__); \
  } while (0)

// --device auto|cpu|cuda|cuda:N -> the device to run on (initialises CUDA on GPU N when chosen); errors name the
// flag. parse_device checks the spelling only (no GPU needed), so a bad value fails before any work.
struct DeviceRequest {
  enum Kind { Auto, Cpu, Cuda } kind;
  int index;  // the GPU for Cuda (0 for a plain "cuda")
};
DeviceRequest parse_device(const std::string& requested);
Device select_device(const std::string& requested);
int batch(int argc, char** argv);
int merge_manifests(int argc, char** argv);
int bench(int argc, char** argv);
int profile_sparsity(int argc, char** argv);
int compare_dense(int argc, char** argv);
int plan_mask(int argc, char** argv);
int check_prompts(int argc, char** argv);
int generate(int argc, char** argv);
int decode(int argc, char** argv);
int inspect(int argc, char** argv);
int encode_text(int argc, char** argv);

}  // namespace lf::cmd
