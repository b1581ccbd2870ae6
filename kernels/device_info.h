#pragma once
// Host-side device queries; plain C++ types so files compiled by g++ can include it.
#include <string>

namespace lf::gpu {

int device_count();                 // 0 when there is no driver or no GPU
std::string device_name(int device);  // "NVIDIA H200 (sm_90, 132 SMs, 140 GiB)"

}  // namespace lf::gpu
