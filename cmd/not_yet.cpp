// Subcommands that are listed so scripts and --help are stable, and say plainly when they arrive.
#include <fmt/format.h>

#include <cstring>
#include <string>

#include "commands.h"

namespace lf::cmd {

int not_yet(const char* name, int argc, char** argv) {
  const std::string command = name;
  const char* milestone = "sparse attention (planners, block-sparse kernels)";
  const bool help = argc > 1 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"));
  fmt::print(help ? stdout : stderr, "lightforce {}: not available in this version; it arrives with {}.\n", command,
             milestone);
  return help ? 0 : 1;
}

}  // namespace lf::cmd
