"""Shared by tools/make_vae_fixtures.py and tools/make_taehv_fixtures.py: the formula that gives every decoder
parameter a value from its name alone, which tests/test_decoders_parity.cpp recomputes in C++ (fixture_weights),
so the fixtures store latents and official outputs but no weights, even at the real widths; and a minimal
safetensors writer (the `safetensors` package is not needed).

    h    = FNV-1a 32-bit of the parameter name
    x    = (i * 2654435761 + h * 374761393 + seed * 668265263) mod 2^32, then a 32-bit finaliser (below)
    u    = x / 2^32 in [0, 1)
    gamma: 1 + 0.5 (u - 0.5); bias: 0.2 (2u - 1); other: (2u - 1) sqrt(3 / fan_in), fan_in = numel / shape[0]
computed in float64 and rounded to float32 once, identically in both languages.
"""

import json
import struct

import numpy as np

MASK = np.uint64(0xFFFFFFFF)


def fnv1a(name):
    h = 2166136261
    for byte in name.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def fixture_values(name, shape, seed):
    count = int(np.prod(shape))
    i = np.arange(count, dtype=np.uint64)
    x = (i * np.uint64(2654435761) + np.uint64(fnv1a(name) * 374761393 % 2**32) +
         np.uint64(seed * 668265263 % 2**32)) & MASK
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(2246822519)) & MASK
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(3266489917)) & MASK
    x ^= x >> np.uint64(16)
    u = x.astype(np.float64) / 4294967296.0
    if name.endswith("gamma"):
        values = 1.0 + 0.5 * (u - 0.5)
    elif name.endswith("bias"):
        values = 0.2 * (2.0 * u - 1.0)
    else:
        fan_in = count // shape[0]
        values = (2.0 * u - 1.0) * np.sqrt(3.0 / fan_in)
    return values.astype(np.float32).reshape(shape)


def fill_state_dict(module, prefix_filter, seed):
    """Sets every parameter whose name starts with one of prefix_filter; returns how many were set."""
    import torch
    state = module.state_dict()
    filled = 0
    for name, tensor in state.items():
        if not any(name.startswith(p) for p in prefix_filter):
            continue
        values = fixture_values(name, tuple(tensor.shape), seed)
        tensor.copy_(torch.from_numpy(values))
        filled += 1
    return filled


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    blobs, offset = [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)
