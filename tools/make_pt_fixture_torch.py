#!/usr/bin/env python3
"""Writes tests/fixtures/io/torch_real_state_dict.pt with the real torch.save, for the machine that has PyTorch,
and, when the `safetensors` package is installed too, torch_real.safetensors with its save_file.

tools/make_io_fixtures.py imitates torch.save with the standard library; these files are the check that the
imitation matches the real thing. tests/test_io_weights.cpp reads them when present (and says it skipped them
when not). Run from the repository root, then commit the files:

    python3 tools/make_pt_fixture_torch.py

Values follow the same formulas as make_io_fixtures.py, which the C++ test recomputes:
    formula(seed, i)     = ((i * 37 + seed * 101) % 211 - 105) / 16
    formula_fp8(seed, i) = ((i * 5 + seed) % 15 - 7) / 4
    int_formula(i)       = i * 1000003 - 5
"""

import os
import sys

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "io")
OUT = os.path.join(FIXTURES, "torch_real_state_dict.pt")
OUT_SAFETENSORS = os.path.join(FIXTURES, "torch_real.safetensors")


def formula(seed, count):
    i = torch.arange(count, dtype=torch.float64)
    return ((i * 37 + seed * 101) % 211 - 105) / 16


def formula_fp8(seed, count):
    i = torch.arange(count, dtype=torch.float64)
    return ((i * 5 + seed) % 15 - 7) / 4


def main():
    torch.manual_seed(0)
    shared = formula(7, 64).to(torch.bfloat16)  # two views of one storage: storage_offset 0 and 32
    generator = {
        "model.blocks.0.self_attn.q.weight": formula(1, 32).reshape(4, 8).to(torch.bfloat16),
        "model.blocks.0.self_attn.q.bias": formula(2, 8).to(torch.float32),
        "model.blocks.0.norm.weight": formula(3, 8).to(torch.float16),
        "model.blocks.0.ffn.fc1.weight": formula_fp8(4, 32).reshape(2, 16).to(torch.float8_e4m3fn),
        "model.pos_ids": torch.arange(6, dtype=torch.int64) * 1000003 - 5,
        "model.head.weight": torch.nn.Parameter(formula(5, 12).reshape(3, 4).to(torch.float32)),
        "model.blocks.0.self_attn.k.weight": shared[:32].view(4, 8),
        "model.blocks.0.self_attn.v.weight": shared[32:].view(4, 8),
        "model.scale": torch.tensor(0.5, dtype=torch.float32),
    }

    # A real nn.Module state dict (an OrderedDict carrying _metadata) and a real optimizer state.
    module = torch.nn.Linear(8, 4)
    with torch.no_grad():
        module.weight.copy_(formula(8, 32).reshape(4, 8))
        module.bias.copy_(formula(9, 4))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    module(torch.ones(2, 8)).sum().backward()
    optimizer.step()
    with torch.no_grad():  # put the formula values back after the step so the test can check them
        module.weight.copy_(formula(8, 32).reshape(4, 8))
        module.bias.copy_(formula(9, 4))

    state = {
        "generator": generator,
        "generator_ema": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": 1234,
        "note": "written by tools/make_pt_fixture_torch.py",
    }
    torch.save(state, OUT)

    print(f"torch {torch.__version__}: wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")
    loaded = torch.load(OUT, weights_only=True)
    for group, values in loaded.items():
        if not isinstance(values, dict):
            print(f"  {group} = {values!r}")
            continue
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                print(f"  {group}.{name}: {value.dtype} {list(value.shape)} stride {value.stride()} "
                      f"offset {value.storage_offset()}")
            else:
                print(f"  {group}.{name} = {value!r}")

    try:
        from safetensors.torch import save_file
    except ImportError:
        print("safetensors is not installed: torch_real.safetensors not written")
        return 0
    tensors = {name: value.detach().contiguous() for name, value in generator.items()
               if name != "model.blocks.0.self_attn.v.weight"}  # save_file refuses tensors that share memory
    tensors["model.mask"] = torch.tensor([True, False, True])
    save_file(tensors, OUT_SAFETENSORS, metadata={"format": "pt", "writer": "make_pt_fixture_torch"})
    print(f"wrote {os.path.normpath(OUT_SAFETENSORS)} ({os.path.getsize(OUT_SAFETENSORS)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
