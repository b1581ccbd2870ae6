#pragma once
// One function per subcommand; each parses its own flags. Exit codes: 0 ok, 1 runtime error, 2 usage error.
namespace lf::cmd {

int generate(int argc, char** argv);
int inspect(int argc, char** argv);
int not_yet(const char* name, int argc, char** argv);

}  // namespace lf::cmd
