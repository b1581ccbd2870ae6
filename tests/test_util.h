#pragma once
// Shared test helpers: fresh random inputs (never zeros) and the rel-L2 measure every parity test uses.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/tensor.h"

namespace lf::test {

// Deterministic but non-trivial values in [-scale, scale) from a simple LCG keyed by `seed`.
inline Tensor random_tensor(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Tensor tensor = Tensor::empty(shape);
  float* data = tensor.f32();
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < tensor.numel(); ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    data[i] = scale * (float((state >> 40) & 0xffffff) / float(1 << 23) - 1.0f);
  }
  return tensor;
}

// ||a - b|| / ||b||; NaN or Inf anywhere gives +Inf so that NaN never passes a `< tol` check.
inline double rel_l2(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return INFINITY;
  double diff = 0, ref = 0;
  const float* x = a.f32();
  const float* y = b.f32();
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return INFINITY;
    diff += double(x[i] - y[i]) * double(x[i] - y[i]);
    ref += double(y[i]) * double(y[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

inline std::string tmp_path(const std::string& name) { return std::string(LF_TEST_TMP) + "/" + name; }
// tmp_path(name) with whatever an earlier run left there removed.
inline std::string fresh_tmp_path(const std::string& name) {
  const std::string path = tmp_path(name);
  std::filesystem::remove_all(path);
  return path;
}
// A file's whole contents ("" when it cannot be read).
inline std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

struct RunResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the lightforce binary with `args` (shell syntax), capturing stdout, stderr and the exit code.
inline RunResult run(const std::string& args) {
  // Per process: test executables may run in parallel.
  const std::string err_path = tmp_path("cli_stderr_" + std::to_string(getpid()) + ".txt");
  const std::string command = std::string(LF_BINARY) + " " + args + " 2>" + err_path;
  RunResult result{-1, "", ""};
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer;
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) result.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  result.err = text.str();
  return result;
}

}  // namespace lf::test
