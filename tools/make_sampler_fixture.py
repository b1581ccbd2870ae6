#!/usr/bin/python3
"""Writes tests/fixtures/sampler/sampler_reference.safetensors: seeded noise, a head bias, and the latents that
Self-Forcing's samplers give for them, computed with numpy from the documented formulas
(/work/shared/spec/wan-selfforcing.md 10.2-10.3, docs/decisions.md), not from lightforce's code:

- sigma table: s = linspace(1, 0, 1001)[:-1], sigma = shift s / (1 + (shift - 1) s), t = 1000 sigma, each a separate
  fp32 operation; warp: denoising step k -> the table's timestep at index 1000 - k; sigma of a timestep: the table
  sigma at the nearest table timestep.
- renoise sampler per chunk: x = the chunk's initial noise; per step: x0 = x - sigma_k v; then, before the next step,
  x = (1 - sigma_k+1) x0 + sigma_k+1 eps (fresh noise `renoise_c{chunk}_s{k+1}`); the chunk's output is the last x0.
- euler sampler: x = x + (sigma_k+1 - sigma_k) v between steps, no fresh noise; the output is the last x0.

numpy's linspace rounds each entry once from the exact value; PyTorch's fp32 CPU fill (which the engine follows bit for
bit, pinned from real torch output in tests/test_pipeline.cpp) differs by one ulp at 430 of the 1001 entries, e.g.
index 500 (0.5 here, 0.49999994 in torch). Of the steps below only the shift-3 case meets one (sigma 0.75 vs
0.74999994), and the C++ test bounds that difference.

The velocity v is known without running a DiT: tests/test_pipeline.cpp zeroes the head's weight, so every token's
head output is the head bias (whatever the random blocks compute), unpatchified as Wan does
(out[c, 2h + q, 2w + r] = head_out[(q * 2 + r) * C + c]). Tensors are fp32 as in the engine; each operation is
computed in float64 and stored as float32, as the engine's CPU ops do.

    /usr/bin/python3 tools/make_sampler_fixture.py     # Debian: python3-numpy

Tensors: noise_initial [6, 3, 4, 6] and renoise_c{0,1}_s{1,2,3} [3, 3, 4, 6] (the file doubles as a --noise file),
head_bias [12], and per case timesteps_<case>, sigmas_<case> (f64 [steps]) and latents_<case> (f32 [6, 3, 4, 6]).
"""
import pathlib

import numpy as np

from numpy_safetensors import write_safetensors

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sampler" / "sampler_reference.safetensors"
FRAMES, CHUNK_FRAMES, CHANNELS, HEIGHT, WIDTH, PATCH = 6, 3, 3, 4, 6, 2
# name -> (sampler, shift, warp, denoising steps); the C++ test sets the same values.
CASES = {
    "renoise_shift5_warp": ("renoise", 5.0, True, [1000, 750, 500, 250]),   # Self-Forcing's default
    "renoise_shift8_plain": ("renoise", 8.0, False, [1000, 757, 522]),      # CausVid-style, nearest-sigma lookup
    "euler_shift3_warp": ("euler", 3.0, True, [1000, 750, 500, 250]),       # flow-matching models (the testbed)
}


def schedule(shift, warp, steps):
    raw = np.linspace(1.0, 0.0, 1001).astype(np.float32)[:-1]
    shift32 = np.float32(shift)
    sigma_table = (shift32 * raw) / (np.float32(1) + (shift32 - np.float32(1)) * raw)
    timestep_table = sigma_table * np.float32(1000)
    timesteps = []
    for step in steps:
        if warp:
            index = 1000 - int(step)
            timesteps.append(0.0 if index == 1000 else float(timestep_table[index]))
        else:
            timesteps.append(float(step))
    sigmas = [float(sigma_table[np.argmin(np.abs(timestep_table.astype(np.float64) - t))]) for t in timesteps]
    return np.array(timesteps), np.array(sigmas)


def velocity(head_bias):
    v = np.empty((CHANNELS, HEIGHT, WIDTH), np.float32)
    for c in range(CHANNELS):
        for q in range(PATCH):
            for r in range(PATCH):
                v[c, q::PATCH, r::PATCH] = head_bias[(q * PATCH + r) * CHANNELS + c]
    return v.astype(np.float64)


def f32(x):
    return np.asarray(x, np.float64).astype(np.float32).astype(np.float64)


def sample(sampler, sigmas, noise, v):
    latents = np.empty((FRAMES, CHANNELS, HEIGHT, WIDTH), np.float32)
    for chunk in range(FRAMES // CHUNK_FRAMES):
        frames = slice(chunk * CHUNK_FRAMES, (chunk + 1) * CHUNK_FRAMES)
        x = noise["noise_initial"][frames].astype(np.float64)
        for k, sigma in enumerate(sigmas):
            x0 = f32(x - sigma * v)
            if k + 1 < len(sigmas):
                following = sigmas[k + 1]
                if sampler == "renoise":
                    eps = noise[f"renoise_c{chunk}_s{k + 1}"].astype(np.float64)
                    x = f32((1 - following) * x0 + following * eps)
                else:
                    x = f32(x + (following - sigma) * v)
        latents[frames] = x0
    return latents


def main():
    rng = np.random.default_rng(20261207)
    noise = {"noise_initial": rng.standard_normal((FRAMES, CHANNELS, HEIGHT, WIDTH)).astype(np.float32)}
    for chunk in range(FRAMES // CHUNK_FRAMES):
        for step in (1, 2, 3):
            noise[f"renoise_c{chunk}_s{step}"] = rng.standard_normal((CHUNK_FRAMES, CHANNELS, HEIGHT, WIDTH)).astype(np.float32)
    head_bias = rng.uniform(-1.5, 1.5, PATCH * PATCH * CHANNELS).astype(np.float32)
    tensors = dict(noise)
    tensors["head_bias"] = head_bias
    v = velocity(head_bias)
    for name, (sampler, shift, warp, steps) in CASES.items():
        timesteps, sigmas = schedule(shift, warp, steps)
        tensors[f"timesteps_{name}"] = timesteps
        tensors[f"sigmas_{name}"] = sigmas
        tensors[f"latents_{name}"] = sample(sampler, sigmas, noise, v)
        print(f"{name}: timesteps {timesteps.tolist()}, sigmas {sigmas.tolist()}")
    metadata = {"generator": "tools/make_sampler_fixture.py", "numpy": np.__version__, "seed": "20261207"}
    metadata.update({f"case_{name}": f"sampler={s} shift={sh} warp={w} steps={st}" for name, (s, sh, w, st) in CASES.items()})
    write_safetensors(OUT, tensors, metadata)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
