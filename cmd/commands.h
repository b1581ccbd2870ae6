#pragma once
// One function per subcommand; each parses its own flags. Exit codes: 0 ok, 1 runtime error, 2 usage error.
#include <string>

#include "core/tensor.h"

namespace lf::cmd {

// --device auto|cpu|cuda -> the device to run on (initialises CUDA when chosen); errors name the flag.
Device select_device(const std::string& requested);
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
