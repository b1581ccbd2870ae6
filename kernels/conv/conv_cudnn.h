#pragma once
// The decoders' convolutions through cuDNN (docs/decoders.md, "GPU conv method"): loaded at run time
// (libcudnn.so.9, dlopen) so a machine without cuDNN still runs, on the im2col path (conv_ops.h). Plain C++ types.
//
// A causal 3D conv over [T, C, H, W] frames is one 2D conv per output frame over kt consecutive frames: the kt
// frames a tap window reads, [history; input][t .. t + kt), are contiguous, i.e. one [kt * C, H, W] image with
// channels in (dt, c) order, and the weight re-packed to [O, kt, C, kh, kw] is its 2D filter. The algorithm is
// planned per output frame, so it does not depend on how many frames a call holds (streaming decode stays equal to
// whole decode); the call then runs all its frames as one cuDNN batch with that algorithm, the batch stride one
// input frame (windows overlap when kt > 1), or frame by frame (LF_CONV_BATCH=0, or where cuDNN refuses the
// batch). bf16 in and out, fp32 accumulation, tensor cores.
#include <cstddef>
#include <cstdint>
#include <string>

namespace lf::gpu {

using Stream = void*;

// Whether cuDNN could be loaded (tried once); otherwise `why` (if given) says what failed.
bool cudnn_available(std::string* why = nullptr);
// "9.14.0" style, or "" when not loaded.
std::string cudnn_version();

struct CudnnConvShape {
  int64_t frames = 0, channels = 0, height = 0, width = 0;  // output frames; input channels per frame
  int64_t outs = 0, kt = 1, kh = 1, kw = 1;                 // odd kh, kw: 'same' padding kh / 2, kw / 2
};

// Whether cuDNN runs this shape (cuDNN loaded, a deterministic algorithm within the workspace limit); the plan is
// made and cached on first use, failures included. `why` says what failed.
bool cudnn_conv_supported(const CudnnConvShape& shape, std::string* why = nullptr);
// Workspace bytes the conv of this shape needs (batched or frame by frame, as the call will run); throws lf::Error
// where it is not supported.
size_t cudnn_conv_workspace(const CudnnConvShape& shape);

// out [frames, outs, H, W] bf16 = conv(frames_in, weight): frames_in bf16 [frames + kt - 1, channels, H, W]
// (history first), weight bf16 [outs, kt * channels, kh, kw] (time-major, conv_pack_weight_time_major).
void cudnn_conv(const CudnnConvShape& shape, const uint16_t* frames_in, const uint16_t* weight, uint16_t* out,
                void* workspace, size_t workspace_bytes, Stream stream);

// Whether a call of this shape runs its frames as one cuDNN batch (the switch on, 2+ frames, cuDNN accepting it).
bool cudnn_conv_batched(const CudnnConvShape& shape);

// Which algorithm the plan of this shape uses (for the docs and reports).
std::string cudnn_conv_plan_text(const CudnnConvShape& shape);

}  // namespace lf::gpu
