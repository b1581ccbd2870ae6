#!/usr/bin/env python3
"""What cuDNN can do for the decoders' convolutions, timed through PyTorch on the GPU machine (issue 18).

For each conv shape the decoders run per chunk (TAEHV's 2D convs; the Wan VAE's causal 3D convs as the 2D conv over
kt x C channels that our cuDNN path issues, docs/decoders.md), bf16, CUDA events, median of --reps:
  - one call per frame (N = 1, NCHW): what the engine does today,
  - one call for the chunk's frames (N = frames) in NCHW and in channels-last (NHWC),
with cuDNN's heuristic choice (benchmark off, deterministic on: how the engine picks) and with cudnn.benchmark on.
Prints one line a shape and writes JSON (--out). Random inputs; nothing of ours runs.
"""
import argparse
import json
import statistics

import torch

# (name, frames in the chunk, input channels, output channels, height, width, kernel)
SHAPES = [
    ("taehv s0 memblock 512->256 60x104", 3, 512, 256, 60, 104, 3),
    ("taehv s0 256->256 60x104", 3, 256, 256, 60, 104, 3),
    ("taehv s1 256->128 120x208", 3, 256, 128, 120, 208, 3),
    ("taehv s1 128->128 120x208", 3, 128, 128, 120, 208, 3),
    ("taehv s2 128->64 240x416", 6, 128, 64, 240, 416, 3),
    ("taehv s2 64->64 240x416", 6, 64, 64, 240, 416, 3),
    ("taehv s3 64->64 480x832", 12, 64, 64, 480, 832, 3),
    ("taehv s3 64->3 480x832", 12, 64, 3, 480, 832, 3),
    ("wan-vae 3x384->384 60x104", 3, 1152, 384, 60, 104, 3),
    ("wan-vae 3x384->384 120x208", 6, 1152, 384, 120, 208, 3),
    ("wan-vae 3x192->192 240x416", 12, 576, 192, 240, 416, 3),
    ("wan-vae 3x96->96 480x832", 12, 288, 96, 480, 832, 3),
    ("lightvae 3x48->48 480x832", 12, 144, 48, 480, 832, 3),
]


def time_ms(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    conv = torch.nn.functional.conv2d
    rows = []
    for name, frames, cin, cout, h, w, k in SHAPES:
        x = torch.randn(frames, cin, h, w, device="cuda", dtype=torch.bfloat16)
        weight = torch.randn(cout, cin, k, k, device="cuda", dtype=torch.bfloat16) * (cin * k * k) ** -0.5
        flop = 2.0 * frames * cin * cout * k * k * h * w
        row = {"shape": name, "frames": frames, "gflop": flop / 1e9}
        x_last = x.contiguous(memory_format=torch.channels_last)
        w_last = weight.contiguous(memory_format=torch.channels_last)
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            tag = "bench" if benchmark else "heur"
            per_frame = time_ms(lambda: [conv(x[i:i + 1], weight, padding=k // 2) for i in range(frames)], args.reps)
            batched = time_ms(lambda: conv(x, weight, padding=k // 2), args.reps)
            nhwc = time_ms(lambda: conv(x_last, w_last, padding=k // 2), args.reps)
            row.update({f"{tag}_per_frame_ms": per_frame, f"{tag}_batched_nchw_ms": batched,
                        f"{tag}_batched_nhwc_ms": nhwc})
        rows.append(row)
        tf = lambda ms: flop / (ms * 1e-3) / 1e12
        print(f"{name:36s} {row['gflop']:7.1f} GF | heuristic: per-frame {row['heur_per_frame_ms']:7.3f} ms "
              f"({tf(row['heur_per_frame_ms']):5.0f} TF/s), N={frames} NCHW {row['heur_batched_nchw_ms']:7.3f} "
              f"({tf(row['heur_batched_nchw_ms']):5.0f}), NHWC {row['heur_batched_nhwc_ms']:7.3f} "
              f"({tf(row['heur_batched_nhwc_ms']):5.0f}) | benchmark: per-frame {row['bench_per_frame_ms']:7.3f}, "
              f"NCHW {row['bench_batched_nchw_ms']:7.3f}, NHWC {row['bench_batched_nhwc_ms']:7.3f} "
              f"({tf(row['bench_batched_nhwc_ms']):5.0f})", flush=True)
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cudnn": torch.backends.cudnn.version(), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
