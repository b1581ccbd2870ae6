#!/usr/bin/env python3
"""Times the OFFICIAL Wan umT5-XXL encoder (Wan-Video/Wan2.1 wan/modules/t5.py, T5Encoder) on the GPU, to stand
beside `lightforce bench --sizes none --text-encoder umt5-xxl` in the same call (issue 17's side-by-side).

    python3 bench/official_umt5_time.py --wan-t5 build-gpu/wan_t5.py --tokens 512 --out umt5-official.json

--wan-t5 is t5.py fetched outside the repository (never committed; carried in build-gpu/). The model is built as
Wan's T5EncoderModel builds it (umt5_xxl, encoder only, bf16 on the GPU), with its random initialisation and a
64-row vocabulary (the embedding is one gather: its size does not change the time). As Wan runs it: ids padded to
512 with the attention mask; `--tokens` of them are real. Timed with CUDA events after warm-up, median of --repeat.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from make_umt5_parity_fixture import load_official_t5  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wan-t5", required=True)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t5 = load_official_t5(args.wan_t5)
    model = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=torch.bfloat16, device="cuda",
                        vocab_size=64).eval().requires_grad_(False)
    ids = torch.zeros(1, 512, dtype=torch.long, device="cuda")
    ids[0, :args.tokens] = torch.randint(2, 64, (args.tokens,), device="cuda")
    ids[0, args.tokens - 1] = 1
    mask = torch.zeros(1, 512, dtype=torch.long, device="cuda")
    mask[0, :args.tokens] = 1
    with torch.no_grad():
        for _ in range(3):
            model(ids, mask)
        torch.cuda.synchronize()
        times = []
        for _ in range(args.repeat):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = model(ids, mask)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
            assert torch.isfinite(out[0, :args.tokens]).all()
    times.sort()
    report = {"code": "Wan-Video/Wan2.1 wan/modules/t5.py umt5_xxl encoder, bf16", "device": torch.cuda.get_device_name(),
              "torch": torch.__version__, "tokens": args.tokens, "padded_to": 512, "encode_ms": times,
              "median_encode_ms": times[len(times) // 2],
              "peak_gpu_bytes": torch.cuda.max_memory_allocated()}
    json.dump(report, open(args.out, "w"), indent=1)
    print(f"official umT5-XXL ({args.tokens} of 512 tokens, bf16): median {report['median_encode_ms']:.2f} ms")


if __name__ == "__main__":
    main()
