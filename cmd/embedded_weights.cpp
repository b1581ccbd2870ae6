// The testbed's safetensors file, included byte for byte by the assembler (.incbin): no generated source, no
// copy at startup; the loader reads it like a mapped file. CMake passes the path and rebuilds this file when the
// weights change (OBJECT_DEPENDS).
#include "embedded_weights.h"

#ifndef LF_TESTBED_WEIGHTS
#error "LF_TESTBED_WEIGHTS (path of models/testbed/testbed.safetensors) must be defined by the build"
#endif

// 64-byte alignment keeps the file's own 8-byte tensor alignment valid for typed views.
__asm__(".pushsection .rodata\n"
        ".balign 64\n"
        ".global lf_embedded_testbed_begin\n"
        "lf_embedded_testbed_begin:\n"
        ".incbin \"" LF_TESTBED_WEIGHTS "\"\n"
        ".global lf_embedded_testbed_end\n"
        "lf_embedded_testbed_end:\n"
        ".popsection\n");

extern "C" const uint8_t lf_embedded_testbed_begin[];
extern "C" const uint8_t lf_embedded_testbed_end[];

namespace lf::cmd {

std::span<const uint8_t> find_embedded_weights(const std::string& file_name) {
  if (file_name == "testbed.safetensors")
    return {lf_embedded_testbed_begin, size_t(lf_embedded_testbed_end - lf_embedded_testbed_begin)};
  return {};
}

}  // namespace lf::cmd
