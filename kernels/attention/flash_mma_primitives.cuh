#pragma once
// sm_80+ building blocks of the mma.sync kernel: cp.async with zero fill, ldmatrix, m16n8k16 bf16 MMA, and the
// XOR swizzle of shared tiles.
#include <cuda_bf16.h>

#include <cstdint>

namespace lf::gpu::flash {

__device__ __forceinline__ uint32_t shared_address(const void* pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

// Copies 16 bytes global -> shared asynchronously; src_bytes = 0 writes 16 zero bytes instead (rows past the
// end of a tensor: zeros keep 0 * V finite and out-of-range scores are masked anyway).
__device__ __forceinline__ void cp_async_16(uint32_t dst_shared, const void* src_global, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst_shared), "l"(src_global), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPendingGroups>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPendingGroups));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d += a * b for one m16n8k16 tile (row-major A, column-major B, fp32 accumulators).
__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Shared tiles are rows of kRowBytes (head_dim bf16); 16-byte chunk c of row r is stored at chunk c ^ (r % 8).
// ldmatrix reads one chunk column of 8 consecutive rows per 8 lanes, and with the XOR those 8 chunks land in 8
// different bank groups instead of one (a row is a multiple of 128 bytes, so unswizzled they would all conflict).
template <int kRowBytes>
__device__ __forceinline__ uint32_t swizzled_offset(int row, int chunk) {
  return uint32_t(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
}

// Loads rows [first_row, first_row + kRows) of one head (`head_base` = tensor + head * head_dim) into a
// swizzled shared tile; rows at or past `valid_rows` are zero-filled.
template <int kRows, int kHeadDim, int kThreads>
__device__ __forceinline__ void load_tile_async(uint32_t tile_shared, const __nv_bfloat16* head_base,
                                                int64_t row_stride, int first_row, int valid_rows, int thread) {
  constexpr int kChunksPerRow = kHeadDim / 8;
  constexpr int kIterations = kRows * kChunksPerRow / kThreads;
#pragma unroll
  for (int it = 0; it < kIterations; ++it) {
    const int index = thread + it * kThreads;
    const int row = index / kChunksPerRow;
    const int chunk = index % kChunksPerRow;
    const bool in_range = row < valid_rows;
    const __nv_bfloat16* src = head_base + int64_t(first_row + (in_range ? row : 0)) * row_stride + chunk * 8;
    cp_async_16(tile_shared + swizzled_offset<kHeadDim * 2>(row, chunk), src, in_range ? 16 : 0);
  }
}

}  // namespace lf::gpu::flash
