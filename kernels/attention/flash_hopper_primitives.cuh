#pragma once
// sm_90a building blocks of the Hopper kernel: mbarriers, TMA tile loads, wgmma (with shared-memory matrix
// descriptors), register reallocation and named barriers.
//
// Everything here exists only in the sm_90a device pass (__CUDA_ARCH_FEAT_SM90_ALL): wgmma and setmaxnreg are
// rejected by ptxas for plain sm_90, and the kernel that uses them compiles to a stub there.
#include <cuda.h>  // CUtensorMap (a plain struct; no driver library is linked for it)
#include <cuda_bf16.h>

#include <cstdint>

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

namespace lf::gpu::flash::sm90 {

__device__ __forceinline__ uint32_t shared_address_of(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// ---- mbarriers ----------------------------------------------------------------------------------------------
__device__ __forceinline__ void mbarrier_init(uint32_t barrier, uint32_t arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(barrier), "r"(arrivals));
}
// Makes the initialised barriers visible to the async proxy (TMA) before anyone uses them.
__device__ __forceinline__ void mbarrier_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t barrier, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint32_t barrier) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(barrier) : "memory");
}
// Blocks until the phase with `parity` has completed. A fresh barrier is in phase 0, so waiting for parity 1
// returns at once: that is how a producer's first pass over the ring skips the "slot free" waits.
__device__ __forceinline__ void mbarrier_wait(uint32_t barrier, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred complete;\n"
        " mbarrier.try_wait.parity.shared::cta.b64 complete, [%1], %2;\n"
        " selp.u32 %0, 1, 0, complete;\n}\n"
        : "=r"(done)
        : "r"(barrier), "r"(parity)
        : "memory");
  } while (!done);
}

// ---- TMA ----------------------------------------------------------------------------------------------------
// One box of a 3-D tensor map (coordinates innermost first: column, head, token) into shared memory; completion
// is counted in bytes on `barrier` (rows outside the tensor arrive as zeros and still count).
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t barrier, int col,
                                            int head, int row) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(barrier), "r"(col), "r"(head), "r"(row)
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_descriptor(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// ---- warp-group register budget and named barriers -----------------------------------------------------------
template <int kRegisters>
__device__ __forceinline__ void release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kRegisters>
__device__ __forceinline__ void claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegisters));
}
template <int kThreads>
__device__ __forceinline__ void named_barrier_sync(int id) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "n"(kThreads) : "memory");
}
template <int kThreads>
__device__ __forceinline__ void named_barrier_arrive(int id) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "n"(kThreads) : "memory");
}

// ---- wgmma ----------------------------------------------------------------------------------------------------
// Shared-memory matrix descriptor for a tile in the 128-byte swizzle (the layout TMA writes with
// CU_TENSOR_MAP_SWIZZLE_128B): rows of 128 bytes, 8-row atoms of 1024 bytes.
//   K-major operand (Q and K for S = Q K^T): stride_bytes = 1024 between 8-row groups; leading_bytes unused.
//   MN-major operand (V for O += P V, transposed B): leading_bytes = distance between 64-column slabs,
//   stride_bytes = 1024 between 8-key groups.
__device__ __forceinline__ uint64_t smem_descriptor(uint32_t address, uint32_t leading_bytes, uint32_t stride_bytes) {
  return uint64_t((address & 0x3FFFF) >> 4) | (uint64_t((leading_bytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t((stride_bytes & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);  // mode 1 = 128-byte swizzle
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPendingGroups>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPendingGroups) : "memory");
}

// The compiler sees a wgmma's accumulators as written when the instruction is issued. Passing each register
// through an empty asm after wgmma_wait (and before the next issue) pins reads and writes of those registers to
// that point, so no accumulator use drifts across the asynchronous window.
template <int kTiles>
__device__ __forceinline__ void pin_registers(float (&acc)[kTiles][4]) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(acc[j][e])::"memory");
}
template <int kTiles>
__device__ __forceinline__ void pin_registers(uint32_t (&frag)[kTiles][4]) {
#pragma unroll
  for (int j = 0; j < kTiles; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(frag[j][e])::"memory");
}

#define LF_WGMMA_ACC4(t) "+f"(d[t][0]), "+f"(d[t][1]), "+f"(d[t][2]), "+f"(d[t][3])
#define LF_WGMMA_ACC32                                                                                   \
  LF_WGMMA_ACC4(0), LF_WGMMA_ACC4(1), LF_WGMMA_ACC4(2), LF_WGMMA_ACC4(3), LF_WGMMA_ACC4(4), LF_WGMMA_ACC4(5), \
      LF_WGMMA_ACC4(6), LF_WGMMA_ACC4(7)
#define LF_WGMMA_ACC64                                                                                    \
  LF_WGMMA_ACC32, LF_WGMMA_ACC4(8), LF_WGMMA_ACC4(9), LF_WGMMA_ACC4(10), LF_WGMMA_ACC4(11), LF_WGMMA_ACC4(12), \
      LF_WGMMA_ACC4(13), LF_WGMMA_ACC4(14), LF_WGMMA_ACC4(15)
#define LF_WGMMA_REGS32                                                                      \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, " \
  "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define LF_WGMMA_REGS64                                                                                     \
  LF_WGMMA_REGS32                                                                                           \
  ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, " \
  "%53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// S (64 x 128, fp32) (+)= A (64 x 16, smem, K-major) * B (16 x 128, smem, K-major); accumulate = 0 overwrites.
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[16][4], uint64_t a_desc, uint64_t b_desc,
                                                    int accumulate) {
  asm volatile(
      "{\n .reg .pred keep;\n setp.ne.b32 keep, %66, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" LF_WGMMA_REGS64
      "}, %64, %65, keep, 1, 1, 0, 0;\n}\n"
      : LF_WGMMA_ACC64
      : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

// O (64 x 128) += A (64 x 16, registers) * B (16 x 128, smem, MN-major).
__device__ __forceinline__ void wgmma_m64n128k16_rs_tb(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "{\n .reg .pred keep;\n setp.ne.b32 keep, %69, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" LF_WGMMA_REGS64
      "}, {%64, %65, %66, %67}, %68, keep, 1, 1, 1;\n}\n"
      : LF_WGMMA_ACC64
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

// O (64 x 64) += A (64 x 16, registers) * B (16 x 64, smem, MN-major).
__device__ __forceinline__ void wgmma_m64n64k16_rs_tb(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b_desc) {
  asm volatile(
      "{\n .reg .pred keep;\n setp.ne.b32 keep, %37, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" LF_WGMMA_REGS32
      "}, {%32, %33, %34, %35}, %36, keep, 1, 1, 1;\n}\n"
      : LF_WGMMA_ACC32
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(1));
}

#undef LF_WGMMA_ACC4
#undef LF_WGMMA_ACC32
#undef LF_WGMMA_ACC64
#undef LF_WGMMA_REGS32
#undef LF_WGMMA_REGS64

}  // namespace lf::gpu::flash::sm90

#endif  // __CUDA_ARCH_FEAT_SM90_ALL
