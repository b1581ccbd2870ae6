#!/usr/bin/env python3
"""Parity fixtures for the umT5 encoder, made by the OFFICIAL Wan code (wan/modules/t5.py, T5Encoder) with random
weights, for tests/test_umt5_parity.cpp.

    /usr/bin/python3 tools/make_umt5_parity_fixture.py --wan-t5 /tmp/wan/t5.py

--wan-t5 is Wan-Video/Wan2.1's wan/modules/t5.py, fetched outside the repository (it is not committed). Its
tokenizer import and a CUDA default argument are stubbed; nothing stubbed runs.

Cases (tests/fixtures/umt5/):
  parity-small.*        3 blocks, dim 48, per-block position tables (umT5), f32 weights stored in the fixture
  parity-shared.*       2 blocks, shared position table (T5 v1 layout), f32 weights stored
  parity-xxl-layout.*   the full umT5-XXL layout (dim 4096, 64 heads x 64, ffn 10240, 32 buckets, per-block tables)
                        with 2 blocks and a 64-row vocab; its 386 M weights are NOT stored: both sides derive them
                        from a seed (splitmix64, below), rounded to bf16, so the engine runs its bf16-weight path
Each case runs the official model in fp32 on padded ids with Wan's mask, and stores ids and the outputs of the real
tokens ([tokens, dim] per sequence), and the same model's fp64 outputs (rounded to fp32) as the common truth.
"""
import argparse
import importlib.util
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "umt5")

MASK64 = (1 << 64) - 1


def splitmix_uniform(seed, tensor_index, count, scale):
    """value[i] = (int(z >> 40) - 2^23) / 2^23 * scale in fp32, z = splitmix64 finaliser of
    seed * 0x9E3779B97F4A7C15 + tensor_index * 0xD1B54A32D192ED03 + i (mod 2^64). The C++ test has the same."""
    base = (seed * 0x9E3779B97F4A7C15 + tensor_index * 0xD1B54A32D192ED03) & MASK64
    out = np.empty(count, dtype=np.float32)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        for start in range(0, count, chunk):
            z = np.arange(start, min(count, start + chunk), dtype=np.uint64) + np.uint64(base)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            top = (z >> np.uint64(40)).astype(np.int64) - (1 << 23)
            out[start:start + len(top)] = top.astype(np.float32) / np.float32(1 << 23) * np.float32(scale)
    return out


def official_names(config):
    """(name, shape, scale kind) in the engine's slot order (lib/model/umt5_encoder.cpp umt5_weight_slots)."""
    dim, attn, ffn = config["dim"], config["heads"] * config["head_dim"], config["ffn_dim"]
    names = [("token_embedding.weight", (config["vocab"], dim), "embedding")]
    if config["shared_position_bias"]:
        names.append(("pos_embedding.embedding.weight", (config["buckets"], config["heads"]), "position"))
    for i in range(config["layers"]):
        b = f"blocks.{i}."
        names += [(b + "norm1.weight", (dim,), "norm"), (b + "attn.q.weight", (attn, dim), "matrix"),
                  (b + "attn.k.weight", (attn, dim), "matrix"), (b + "attn.v.weight", (attn, dim), "matrix"),
                  (b + "attn.o.weight", (dim, attn), "matrix"), (b + "norm2.weight", (dim,), "norm"),
                  (b + "ffn.gate.0.weight", (ffn, dim), "matrix"), (b + "ffn.fc1.weight", (ffn, dim), "matrix"),
                  (b + "ffn.fc2.weight", (dim, ffn), "matrix")]
        if not config["shared_position_bias"]:
            names.append((b + "pos_embedding.embedding.weight", (config["buckets"], config["heads"]), "position"))
    names.append(("norm.weight", (dim,), "norm"))
    return names


def seeded_weights(config, seed, bf16):
    """The derived weights: uniform, scale sqrt(3 / fan_in) for matrices (unit-variance outputs) except q, whose
    scale is a quarter of that (T5 has no 1/sqrt(d): trained q weights absorb it, and unit-variance q and k would
    give logits of std 8 at head_dim 64, a near-argmax softmax no trained model has; with 1/4 the logits' std is
    about 2), 1 for the embedding, 2 for the position tables (so the bias moves the softmax), norms 1 + U * 0.2."""
    weights = {}
    for index, (name, shape, kind) in enumerate(official_names(config)):
        count = int(np.prod(shape))
        if kind == "matrix":
            quarter = 0.25 if name.endswith("attn.q.weight") else 1.0
            values = splitmix_uniform(seed, index, count, (3.0 / shape[1]) ** 0.5 * quarter)
        elif kind == "embedding":
            values = splitmix_uniform(seed, index, count, 1.0)
        elif kind == "position":
            values = splitmix_uniform(seed, index, count, 2.0)
        else:
            values = np.float32(1.0) + splitmix_uniform(seed, index, count, 0.2)
        tensor = torch.from_numpy(values.reshape(shape))
        weights[name] = tensor.to(torch.bfloat16).to(torch.float32) if bf16 else tensor
    return weights


def load_official_t5(path):
    """Imports t5.py as module `wanstub.t5` with its sibling `tokenizers` stubbed (never called)."""
    package = tempfile.mkdtemp(prefix="wan_t5_")
    os.makedirs(os.path.join(package, "wanstub"))
    with open(os.path.join(package, "wanstub", "__init__.py"), "w"):
        pass
    with open(os.path.join(package, "wanstub", "tokenizers.py"), "w") as f:
        f.write("class HuggingfaceTokenizer:\n    pass\n")
    with open(path) as src, open(os.path.join(package, "wanstub", "t5.py"), "w") as dst:
        dst.write(src.read())
    # T5EncoderModel's default argument calls torch.cuda.current_device() at import; CPU torch has no CUDA.
    torch.cuda.current_device = lambda: 0
    sys.path.insert(0, package)
    import wanstub.t5 as t5  # noqa: E402
    return t5


def write_safetensors(path, tensors, metadata=None):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = {np.float32: "F32", np.int64: "I64"}[array.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        blobs.append(array.tobytes())
        offset += array.nbytes
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_config(path, config):
    with open(path, "w") as f:
        f.write("# Made by tools/make_umt5_parity_fixture.py (the encoder size of this parity case).\n")
        for key in ("vocab", "dim", "heads", "head_dim", "ffn_dim", "layers", "buckets", "max_distance",
                    "shared_position_bias", "eps", "max_tokens"):
            value = config[key]
            f.write(f"{key}: {str(value).lower() if isinstance(value, bool) else value}\n")


def run_case(t5, name, config, sequences, padded_length, seed, store_weights, bf16):
    torch.manual_seed(0)
    model = t5.T5Encoder(vocab=config["vocab"], dim=config["dim"], dim_attn=config["heads"] * config["head_dim"],
                         dim_ffn=config["ffn_dim"], num_heads=config["heads"], num_layers=config["layers"],
                         num_buckets=config["buckets"], shared_pos=config["shared_position_bias"], dropout=0.0).eval()
    weights = seeded_weights(config, seed, bf16)
    missing, unexpected = model.load_state_dict(weights, strict=True), None
    del missing, unexpected
    ids = torch.zeros(len(sequences), padded_length, dtype=torch.long)
    mask = torch.zeros(len(sequences), padded_length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
    with torch.no_grad():
        out = model(ids, mask).float()
        # The same model in fp64: the truth both fp32 implementations are measured against (stored rounded to
        # fp32, 6e-8 relative, far below the errors it measures).
        out64 = model.double()(ids, mask).float()
    tensors = {}
    for row, sequence in enumerate(sequences):
        tensors[f"ids.{row}"] = np.array(sequence, dtype=np.int64)
        tensors[f"output.{row}"] = out[row, :len(sequence)].numpy()
        tensors[f"output_fp64.{row}"] = out64[row, :len(sequence)].numpy()
    if store_weights:
        for key, value in weights.items():
            tensors["weights." + key] = value.numpy()
    write_config(os.path.join(OUT, f"parity-{name}.yaml"), config)
    write_safetensors(os.path.join(OUT, f"parity-{name}.safetensors"), tensors,
                      {"seed": str(seed), "bf16_weights": str(bf16).lower(), "sequences": str(len(sequences)),
                       "padded_length": str(padded_length), "made_by": "tools/make_umt5_parity_fixture.py + "
                       "Wan-Video/Wan2.1 wan/modules/t5.py T5Encoder, torch " + torch.__version__ + " fp32 CPU"})
    print(f"parity-{name}: {len(sequences)} sequence(s) of {[len(s) for s in sequences]} tokens, padded to "
          f"{padded_length}, |out| max {out.abs().max().item():.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wan-t5", required=True, help="path of Wan2.1's wan/modules/t5.py (fetched, not committed)")
    args = parser.parse_args()
    t5 = load_official_t5(args.wan_t5)
    torch.set_num_threads(2)
    rng = np.random.default_rng(17)
    base = dict(buckets=32, max_distance=128, eps=1e-6, max_tokens=512)

    small = dict(base, vocab=100, dim=48, heads=3, head_dim=16, ffn_dim=80, layers=3, shared_position_bias=False)
    # 37 tokens, and 150 (distances past max_distance share the last bucket); padded to 160 with Wan's mask.
    sequences = [list(rng.integers(2, 100, 36)) + [1], list(rng.integers(2, 100, 149)) + [1]]
    run_case(t5, "small", small, sequences, 160, seed=11, store_weights=True, bf16=False)

    shared = dict(base, vocab=90, dim=32, heads=2, head_dim=24, ffn_dim=40, layers=2, shared_position_bias=True)
    run_case(t5, "shared", shared, [list(rng.integers(2, 90, 29)) + [1]], 40, seed=12, store_weights=True,
             bf16=False)

    xxl = dict(base, vocab=64, dim=4096, heads=64, head_dim=64, ffn_dim=10240, layers=2, shared_position_bias=False)
    run_case(t5, "xxl-layout", xxl, [list(rng.integers(2, 64, 39)) + [1]], 48, seed=13, store_weights=False,
             bf16=True)


if __name__ == "__main__":
    main()
