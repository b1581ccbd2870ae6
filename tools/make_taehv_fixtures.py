#!/usr/bin/env python3
"""Parity fixtures for the TAEHV decoder from the official code (madebyollin/taehv taehv.py), fp32 on the CPU,
weights from tools/make_vae_fixture_weights.py (by name; the C++ test recomputes them).

Fetch the official file first (it is not part of this repository), then run from the repository root:

    git --git-dir=<mirror of madebyollin/taehv> show HEAD:taehv.py > /tmp/vae-official/taehv.py
    /usr/bin/python3 tools/make_taehv_fixtures.py /tmp/vae-official/taehv.py

Writes tests/fixtures/decoders/taehv_*.safetensors: latents [F, 16, h, w] and video [4F - 3, 3, H, W] from
TAEHV.decode_video(parallel=True) (trimmed by frames_to_trim = 3, clamped to [0, 1]). tqdm is stubbed.
"""

import importlib.util
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vae_fixture_weights import fill_state_dict, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "decoders")


def load_official(path):
    tqdm = types.ModuleType("tqdm")
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = lambda iterable=None, **kwargs: iterable
    tqdm.auto = auto
    sys.modules["tqdm"] = tqdm
    sys.modules["tqdm.auto"] = auto
    spec = importlib.util.spec_from_file_location("official_taehv", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make(official, name, latent_frames, height, width, weight_seed, latent_seed):
    model = official.TAEHV(checkpoint_path=None).eval()
    filled = fill_state_dict(model, ("decoder.",), weight_seed)
    generator = torch.Generator().manual_seed(latent_seed)
    latents = torch.randn(latent_frames, 16, height, width, generator=generator, dtype=torch.float32)
    with torch.no_grad():
        video = model.decode_video(latents.unsqueeze(0), parallel=True, show_progress_bar=False)[0].contiguous()
    saturated = float(((video <= 0) | (video >= 1)).float().mean())
    path = os.path.join(OUT, f"{name}.safetensors")
    write_safetensors(path, {"latents": latents.numpy(), "video": video.numpy()},
                      {"format": "lightforce-decoder-fixture", "decoder": "taehv", "weight_seed": weight_seed,
                       "latent_seed": latent_seed, "source": "madebyollin/taehv taehv.py TAEHV.decode_video, fp32 "
                       "CPU, torch " + torch.__version__})
    print(f"{path}: {filled} tensors, latents {list(latents.shape)} -> video {list(video.shape)}, "
          f"saturated {saturated:.3f}, std {float(video.std()):.3f}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    official = load_official(sys.argv[1])
    torch.set_num_threads(2)
    make(official, "taehv_4x5", latent_frames=4, height=4, width=5, weight_seed=13, latent_seed=3)


if __name__ == "__main__":
    main()
