// The speed switches (speed_switches.h): read once from the environment.
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "kernels/speed_switches.h"

namespace lf::gpu {

namespace {

bool env_is(const char* name, const char* value) {
  const char* set = std::getenv(name);
  return set != nullptr && std::strcmp(set, value) == 0;
}

FlashVariant environment_flash_variant() {
  const char* text = std::getenv("LF_FLASH_VARIANT");
  if (text == nullptr || *text == '\0' || std::strcmp(text, "auto") == 0) return FlashVariant::Auto;
  if (std::strcmp(text, "mma") == 0 || std::strcmp(text, "mma_sync") == 0) return FlashVariant::MmaSync;
  if (std::strcmp(text, "hopper") == 0) return FlashVariant::Hopper;
  fail("LF_FLASH_VARIANT={} is not one of auto, mma_sync, hopper", text);
}

ConvMethod environment_conv_method() {
  const char* text = std::getenv("LF_CONV");
  if (text == nullptr || *text == '\0' || std::strcmp(text, "auto") == 0) return ConvMethod::Auto;
  if (std::strcmp(text, "cudnn") == 0) return ConvMethod::Cudnn;
  if (std::strcmp(text, "im2col") == 0) return ConvMethod::Im2col;
  fail("LF_CONV={} is not one of auto, cudnn, im2col", text);
}

bool environment_t5_attention_gemm() {
  const char* text = std::getenv("LF_T5_ATTENTION");
  if (text == nullptr || *text == '\0') return SpeedSwitches{}.t5_attention_gemm;
  if (std::strcmp(text, "gemm") == 0) return true;
  if (std::strcmp(text, "kernel") == 0) return false;
  fail("LF_T5_ATTENTION={} is not one of gemm, kernel", text);
}

SpeedSwitches& switches_in_force() {
  static SpeedSwitches switches = speed_switches_from_environment();
  return switches;
}

}  // namespace

SpeedSwitches speed_switches_from_environment() {
  SpeedSwitches switches;
  switches.flash_variant = environment_flash_variant();
  switches.sparse_radix_select = !env_is("LF_SPARSE_SELECT", "sort");
  switches.sparse_dependent_launch = !env_is("LF_SPARSE_PDL", "0");
  switches.sparse_fused_score_select = !env_is("LF_SPARSE_FUSED", "0");
  const char* rows = std::getenv("LF_SPARSE_FUSED_ROWS");
  switches.sparse_fused_rows = rows != nullptr ? std::atoi(rows) : 0;
  switches.sparse_skip_planner = env_is("LF_SPARSE_SKIP_PLANNER", "1");
  switches.conv_method = environment_conv_method();
  switches.conv_batch_frames = !env_is("LF_CONV_BATCH", "0");
  switches.t5_attention_gemm = environment_t5_attention_gemm();
  return switches;
}

const SpeedSwitches& speed_switches() { return switches_in_force(); }
void set_speed_switches(const SpeedSwitches& switches) { switches_in_force() = switches; }

}  // namespace lf::gpu
