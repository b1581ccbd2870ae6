#!/usr/bin/env python3
"""Writes a umT5 encoder checkpoint of random bf16 weights with the real shapes and official names (default: the
full umT5-XXL, 11.4 GB), streamed tensor by tensor, for timing the engine without the real file:

    /usr/bin/python3 tools/make_umt5_random_checkpoint.py /tmp/umt5-xxl-random-bf16.safetensors
    lightforce encode-text --t5-weights /tmp/umt5-xxl-random-bf16.safetensors --tokenizer spiece.model ...
"""
import argparse
import json
import struct

import numpy as np


def shapes(vocab, dim, heads, head_dim, ffn, layers, buckets):
    attn = heads * head_dim
    out = [("token_embedding.weight", (vocab, dim))]
    for i in range(layers):
        b = f"blocks.{i}."
        out += [(b + "norm1.weight", (dim,)), (b + "attn.q.weight", (attn, dim)), (b + "attn.k.weight", (attn, dim)),
                (b + "attn.v.weight", (attn, dim)), (b + "attn.o.weight", (dim, attn)), (b + "norm2.weight", (dim,)),
                (b + "ffn.gate.0.weight", (ffn, dim)), (b + "ffn.fc1.weight", (ffn, dim)),
                (b + "ffn.fc2.weight", (dim, ffn)), (b + "pos_embedding.embedding.weight", (buckets, heads))]
    out.append(("norm.weight", (dim,)))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=256384)
    args = parser.parse_args()
    table = shapes(args.vocab, 4096, 64, 64, 10240, args.layers, 32)
    header, offset = {}, 0
    for name, shape in table:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(0)
    with open(args.path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name, shape in table:
            count = int(np.prod(shape))
            std = 1.0 if len(shape) == 1 or name.startswith("token") else shape[1] ** -0.5
            for start in range(0, count, 1 << 24):
                n = min(count - start, 1 << 24)
                values = rng.standard_normal(n, dtype=np.float32) * np.float32(std)
                if len(shape) == 1:
                    values = np.abs(values) * np.float32(0.1) + np.float32(1.0)
                f.write((values.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    print(f"wrote {args.path}: {offset / 1e9:.2f} GB of bf16 weights")


if __name__ == "__main__":
    main()
