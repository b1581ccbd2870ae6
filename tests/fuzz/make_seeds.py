#!/usr/bin/python3
"""Writes the small hand-made seed inputs of the fuzz harnesses that tests/fixtures has no file for (run from the
repository root; the outputs are committed under tests/fuzz/seeds/). Deterministic: fixed numpy seed."""
import json
import os
import struct

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def safetensors(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, array in tensors.items():
        kind = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int32"): "I32"}[array.dtype]
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": kind, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write(folder, name, data):
    os.makedirs(os.path.join(ROOT, folder), exist_ok=True)
    with open(os.path.join(ROOT, folder, name), "wb") as f:
        f.write(data)


def main():
    rng = np.random.default_rng(20261207)
    # The noise harness's run: 6 frames in chunks of 3, 3 channels, 4x4 latents, draws for steps 1 and 2.
    noise = {"noise_initial": rng.standard_normal((6, 3, 4, 4)).astype(np.float32)}
    for chunk in range(2):
        for step in (1, 2):
            noise[f"renoise_c{chunk}_s{step}"] = rng.standard_normal((3, 3, 4, 4)).astype(np.float32)
    write("noise", "complete.safetensors", safetensors(noise, {"format": "lightforce-noise"}))
    write("noise", "initial_f16.safetensors",
          safetensors({"noise_initial": rng.standard_normal((6, 3, 4, 4)).astype(np.float16)}))
    # The text-embedding harness's model: text_dim 8, text_len 16.
    write("text_embeddings", "context.safetensors",
          safetensors({"context": rng.standard_normal((5, 8)).astype(np.float32)}))
    write("text_embeddings", "batched_f16.safetensors",
          safetensors({"emb": rng.standard_normal((1, 16, 8)).astype(np.float16)}))
    # Configs: YAML, then NUL-separated --set overrides (see fuzz_config.cpp).
    write("config", "overrides.yaml",
          b"model: {dim: 64, ffn_dim: 128, heads: 2, layers: 1, text_dim: 8, text_len: 4, in_channels: 3, "
          b"out_channels: 3, latent_height: 8, latent_width: 8}\npipeline: {frames: 6}\n"
          b"\0pipeline.shift=3\0attention.backend=radial\0pipeline.kv_cache.mode=rolling"
          b"\0pipeline.kv_cache.window_frames=6")


if __name__ == "__main__":
    main()
