#!/usr/bin/env python3
"""Parity fixtures for the Wan VAE / LightVAE decoders from the official code (Wan-Video/Wan2.1
wan/modules/vae.py), run in fp32 on the CPU with weights from tools/make_vae_fixture_weights.py.

Fetch the official file first (it is not part of this repository), then run from the repository root:

    git --git-dir=<mirror of Wan-Video/Wan2.1> show HEAD:wan/modules/vae.py > /tmp/vae-official/wan_vae.py
    /usr/bin/python3 tools/make_vae_fixtures.py /tmp/vae-official/wan_vae.py

Writes tests/fixtures/decoders/{wan_vae_real,lightvae,lightvae_zero_cache}_*.safetensors: latents [F, 16, h, w] (normalised, as the
DiT makes them) and video [F', 3, H, W] = clamp(decode, -1, 1) * 0.5 + 0.5, with the config in the metadata.
LightVAE is the Wan graph at dim 24 (LightX2V's int(d * (1 - 0.75)) gives the same widths, [96, 96, 96, 48, 24]).
einops is not needed: the two rearranges vae.py uses are stubbed.
"""

import importlib.util
import os
import sys
import types

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vae_fixture_weights import fill_state_dict, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "decoders")


def stub_einops():
    module = types.ModuleType("einops")

    def rearrange(x, pattern, **sizes):
        if pattern.replace(" ", "") == "bcthw->(bt)chw":
            b, c, t, h, w = x.shape
            return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        if pattern.replace(" ", "") == "(bt)chw->bcthw":
            bt, c, h, w = x.shape
            t = sizes["t"]
            return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
        raise ValueError(f"stub rearrange: unexpected pattern {pattern}")

    module.rearrange = rearrange
    sys.modules["einops"] = module


def shim_sdpa():
    """torch 1.13 (Debian) has no F.scaled_dot_product_attention; this is its definition for the call vae.py makes
    (no mask, no dropout, scale 1/sqrt(head_dim)), in fp32 like the fp32 reference it stands for."""
    import torch.nn.functional as F
    if hasattr(F, "scaled_dot_product_attention"):
        return

    def sdpa(q, k, v):
        scores = torch.matmul(q, k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        return torch.matmul(torch.softmax(scores, dim=-1), v)

    F.scaled_dot_product_attention = sdpa


def load_official(path):
    stub_einops()
    shim_sdpa()
    spec = importlib.util.spec_from_file_location("official_wan_vae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def make(official, name, dim, latent_frames, height, width, weight_seed, latent_seed):
    torch.manual_seed(0)
    model = official.WanVAE_(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                             temperal_downsample=[False, True, True], dropout=0.0).eval()
    filled = fill_state_dict(model, ("decoder.", "conv2."), weight_seed)
    generator = torch.Generator().manual_seed(latent_seed)
    latents = torch.randn(latent_frames, 16, height, width, generator=generator, dtype=torch.float32)
    scale = [torch.tensor(MEAN, dtype=torch.float32), 1.0 / torch.tensor(STD, dtype=torch.float32)]
    with torch.no_grad():
        video = model.decode(latents.permute(1, 0, 2, 3).unsqueeze(0), scale).float().clamp_(-1, 1)
    video = (video[0].permute(1, 0, 2, 3) * 0.5 + 0.5).contiguous()
    saturated = float(((video <= 0) | (video >= 1)).float().mean())
    path = os.path.join(OUT, f"{name}.safetensors")
    write_safetensors(path, {"latents": latents.numpy(), "video": video.numpy()},
                      {"format": "lightforce-decoder-fixture", "decoder": "wan-vae", "dim": dim,
                       "weight_seed": weight_seed, "latent_seed": latent_seed, "source": "Wan-Video/Wan2.1 "
                       "wan/modules/vae.py WanVAE_.decode, fp32 CPU, torch " + torch.__version__})
    print(f"{path}: {filled} tensors, latents {list(latents.shape)} -> video {list(video.shape)}, "
          f"saturated {saturated:.3f}, std {float(video.std()):.3f}")


def make_zero_cache(official, name, dim, latent_frames, height, width, weight_seed, latent_seed):
    """The Self-Forcing demo's rule (demo_utils/vae_block3.py): every cache slot pre-filled with two frames of zeros
    (ZERO_VAE_CACHE), so 'Rep' never fires and latent 0 gives 4 frames; the demo drops the first 3. The official
    Decoder3d runs latent by latent with that cache; the slots' shapes come from one ordinary decode."""
    model = official.WanVAE_(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                             temperal_downsample=[False, True, True], dropout=0.0).eval()
    fill_state_dict(model, ("decoder.", "conv2."), weight_seed)
    generator = torch.Generator().manual_seed(latent_seed)
    latents = torch.randn(latent_frames, 16, height, width, generator=generator, dtype=torch.float32)
    z = latents.permute(1, 0, 2, 3).unsqueeze(0)
    z = z / (1.0 / torch.tensor(STD)).view(1, 16, 1, 1, 1) + torch.tensor(MEAN).view(1, 16, 1, 1, 1)
    with torch.no_grad():
        x = model.conv2(z)
        model.clear_cache()
        for i in range(2):  # two latents fill every slot with a tensor whose shape names the slot's input
            model.decoder(x[:, :, i:i + 1], feat_cache=model._feat_map, feat_idx=[0])
        # Slots past the last cached conv (count_conv3d also counts the uncached 1x1x1 shortcuts) stay unused.
        cache = [None if t is None else torch.zeros(t.shape[0], t.shape[1], 2, t.shape[3], t.shape[4])
                 for t in model._feat_map]
        frames = [model.decoder(x[:, :, i:i + 1], feat_cache=cache, feat_idx=[0]) for i in range(latent_frames)]
    video = torch.cat(frames, 2)[:, :, 3:].float().clamp_(-1, 1)
    video = (video[0].permute(1, 0, 2, 3) * 0.5 + 0.5).contiguous()
    path = os.path.join(OUT, f"{name}.safetensors")
    write_safetensors(path, {"latents": latents.numpy(), "video": video.numpy()},
                      {"format": "lightforce-decoder-fixture", "decoder": "wan-vae", "dim": dim,
                       "first_frame": "zero-cache", "weight_seed": weight_seed, "latent_seed": latent_seed,
                       "source": "Wan-Video/Wan2.1 wan/modules/vae.py Decoder3d with zero-filled caches (the "
                       "Self-Forcing demo's rule), first 3 frames dropped, fp32 CPU, torch " + torch.__version__})
    print(f"{path}: latents {list(latents.shape)} -> video {list(video.shape)}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    official = load_official(sys.argv[1])
    torch.set_num_threads(2)
    make(official, "lightvae_6x5", dim=24, latent_frames=5, height=6, width=5, weight_seed=11, latent_seed=1)
    make(official, "wan_vae_real_3x4", dim=96, latent_frames=3, height=3, width=4, weight_seed=12, latent_seed=2)
    make_zero_cache(official, "lightvae_zero_cache_4x5", dim=24, latent_frames=4, height=4, width=5, weight_seed=14,
                    latent_seed=4)


if __name__ == "__main__":
    main()
