#pragma once
// The speed switches: every environment variable that changes which GPU code path runs, in one struct read once
// (from the environment, at first use) and listed in one table (docs/performance.md, "Speed switches"). The
// defaults are the production paths; each switch keeps an older exact path reachable (STYLE habit 6) or pins a
// choice for a measurement. Labs and tests change them with set_speed_switches between launches, from one thread.
// Host-side API with plain C++ types: g++-compiled code includes this without CUDA headers.
#include "kernels/attention/flash_attention.h"

namespace lf::gpu {

// LF_CONV=auto|cudnn|im2col: the decoders' convolutions. auto takes cuDNN where libcudnn.so.9 loads and offers a
// deterministic algorithm for the shape, else im2col + cuBLASLt; cudnn fails where cuDNN cannot run.
enum class ConvMethod : uint8_t { Auto, Cudnn, Im2col };

struct SpeedSwitches {
  // LF_FLASH_VARIANT=auto|mma_sync|mma|hopper: the kernel a requested Auto resolves to (dense and block-sparse).
  FlashVariant flash_variant = FlashVariant::Auto;
  // LF_SPARSE_SELECT=sort: planners select top-k / HSA rows with the bitonic sort instead of the radix select
  // (same masks bit for bit).
  bool sparse_radix_select = true;
  // LF_SPARSE_PDL=0: planner kernels launch plainly instead of as programmatic dependents (same masks).
  bool sparse_dependent_launch = true;
  // LF_SPARSE_FUSED=0: top-k / HSA score and select in two launches instead of the fused one (same masks).
  bool sparse_fused_score_select = true;
  // LF_SPARSE_FUSED_ROWS=2|8: query-block rows per CTA of the fused score-select (0, or any other value: the tuned
  // default).
  int sparse_fused_rows = 0;
  // LF_SPARSE_SKIP_PLANNER=1, measurement only (the masks are then wrong): a call whose mask has the shape of the
  // last planned one reuses it without planning, so a bench A/B gives the planner's whole cost.
  bool sparse_skip_planner = false;
  // No environment variable, lab_sparse only: the Hopper block-sparse launch as persistent CTAs (one per SM walking
  // the rows) and with frame tails packed into shared tiles; the lab turns them off to time the plain launch.
  bool block_sparse_persistent = true;
  bool block_sparse_pack_tails = true;
  ConvMethod conv_method = ConvMethod::Auto;
  // LF_CONV_BATCH=0: cuDNN convolves one output frame a call instead of all the call's frames at once (one batch
  // with the per-frame plan's algorithm; tests/test_gpu_conv.cpp checks the two give the same bits).
  bool conv_batch_frames = true;
  // LF_T5_ATTENTION=gemm|kernel: umT5's biased attention as S = Q K^T per head (cuBLAS batched, fp32 out), a row
  // softmax with the bias, and P V as a batched fp32 GEMM; or as the fused tiled kernel (kernels/ops/t5_ops.cu).
  // Both within one bf16 rounding of the CPU reference (tests/test_gpu_umt5.cpp runs both). gemm measured faster:
  // 4.7 against 7.0 ms of attention a 512-token encode (H100, bench/results/session-gpu7).
  bool t5_attention_gemm = true;
};

// The switches in force: read from the environment at the first call (a bad value fails naming the variable),
// then whatever set_speed_switches last set.
const SpeedSwitches& speed_switches();
void set_speed_switches(const SpeedSwitches& switches);
// What the environment says, without changing the switches in force.
SpeedSwitches speed_switches_from_environment();

}  // namespace lf::gpu
