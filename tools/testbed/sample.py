#!/usr/bin/env python3
"""Samples the testbed model in PyTorch with the engine's chunk loop and checks that videos follow their prompts.

The chunk loop is the engine's (lib/pipeline/ar_pipeline.cpp): per chunk, x = initial noise; for each step
x0 = x - sigma * v, then x = (1 - sigma') x0 + sigma' * fresh noise; the clean x0 becomes context at t = 0. The
context is recomputed each forward instead of cached (the same numbers: the refresh pass of chunk j sees exactly
the clean chunks <= j). Runs in fp32 with TF32 off, so it is the reference the C++ engine is compared with.

    python3 tools/testbed/sample.py --weights models/testbed/testbed.safetensors --out $OUT \
        --parity-prompt "a red circle moves right" --parity-seed 7
writes $OUT/parity-noise.safetensors (every draw, in the engine's --noise layout) and
$OUT/parity-torch.safetensors (the latents), and prints the prompt-following rate over the evaluation prompts.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procedural  # noqa: E402
import recipe  # noqa: E402
import wan_model  # noqa: E402

# The prompts the C++ prompt-following test uses too (tests/test_testbed.cpp): single objects in each direction
# and motion, and two objects at once.
EVAL_PROMPTS = [
    "a red circle moves right",
    "a blue square moves left",
    "a green triangle moves down",
    "a yellow diamond moves up",
    "a white circle falls",
    "a orange square rises",
    "a purple triangle moves right fast",
    "a red square moves left slowly",
    "a blue circle moves down",
    "a green diamond moves right",
    "a yellow square falls",
    "a white triangle moves left",
    "a orange circle moves up",
    "a purple circle stays still",
    "a red circle moves right and a blue square moves left",
    "a green square falls and a yellow circle moves right",
]


def load_model(path, device):
    from safetensors.torch import load_file
    config = wan_model.Config(**recipe.MODEL)
    model = wan_model.WanTestbed(config)
    model.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    return model.to(device).eval()


def make_noise(seed, batch, steps, device):
    """Every draw of a run: initial [F, C, H, W] and renoise per (chunk, step >= 1), rounded to bf16 so that a
    file holds them exactly."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    c = recipe.MODEL
    shape = (recipe.FRAMES, c["in_channels"], c["latent_height"], c["latent_width"])
    chunk_shape = (recipe.CHUNK_FRAMES,) + shape[1:]
    draws = []
    for _ in range(batch):
        d = {"noise_initial": torch.randn(shape, generator=g).bfloat16()}
        for chunk in range(recipe.FRAMES // recipe.CHUNK_FRAMES):
            for step in range(1, steps):
                d[f"renoise_c{chunk}_s{step}"] = torch.randn(chunk_shape, generator=g).bfloat16()
        draws.append(d)
    return draws


@torch.no_grad()
def sample(model, prompts, noises, device, pipeline=recipe.PIPELINE):
    config = model.c
    timesteps, sigmas = recipe.engine_schedule(pipeline)
    ids = torch.tensor([procedural.encode_prompt(p, config.text_len) for p in prompts], device=device)
    text_k, text_v = model.text_kv(model.encode_text(ids))
    B, cf = len(prompts), recipe.CHUNK_FRAMES
    chunks = recipe.FRAMES // cf
    clean = []
    for chunk in range(chunks):
        x = torch.stack([n["noise_initial"][chunk * cf:(chunk + 1) * cf] for n in noises]).float().to(device)
        roles = wan_model.frame_roles(chunk, cf, True, [chunk])
        attend = wan_model.sdpa_attend(wan_model.visibility(roles, config.tokens_per_frame, device))
        positions = list(range(chunk * cf + cf))
        for step, (t, sigma) in enumerate(zip(timesteps, sigmas)):
            frames = torch.cat(clean + [x], 1)
            ts = torch.tensor([float(pipeline["context_noise"])] * (chunk * cf) + [t] * cf, device=device)
            v = model(frames, ts.expand(B, -1), positions, text_k, text_v, attend, head_frames=slice(chunk * cf, None))
            x0 = x - sigma * v
            if step + 1 < len(timesteps):
                nxt = sigmas[step + 1]
                if pipeline.get("sampler", "renoise") == "euler":
                    x = x + (nxt - sigma) * v  # the flow ODE: x0 and the model's own noise estimate, re-mixed
                else:
                    fresh = torch.stack([n[f"renoise_c{chunk}_s{step + 1}"] for n in noises]).float().to(device)
                    x = (1 - nxt) * x0 + nxt * fresh
        clean.append(x0)
    return torch.cat(clean, 1)  # [B, F, C, H, W]


# ---- prompt following ---------------------------------------------------------------------------------------------

def parse_objects(prompt):
    """(colour, motion) per object of a grammar prompt; motion is a screen direction, 'still' or 'bounces'."""
    objects = []
    for clause in prompt.split(" over ")[0].split(" as ")[0].split(" and a "):
        words = clause.replace("a ", "", 1).split() if clause.startswith("a ") else clause.split()
        colour, rest = words[0], words[2:]
        if rest[:1] == ["moves"]:
            motion = rest[1]
        elif rest[:1] == ["falls"]:
            motion = "down"
        elif rest[:1] == ["rises"]:
            motion = "up"
        elif rest[:1] == ["stays"]:
            motion = "still"
        else:
            motion = rest[0]
        objects.append((colour, motion))
    return objects


def follows(video, prompt):
    """video [F, 3, H, W] in [-1, 1]. True when every named object is present (pixels near its colour in most
    frames) and its centroid moves the named way between the first and the last three frames."""
    rgb = (video.float().clamp(-1, 1) + 1) / 2
    for colour, motion in parse_objects(prompt):
        target = torch.tensor(procedural.COLOURS[colour], device=video.device).view(1, 3, 1, 1)
        mask = (rgb - target).norm(dim=1) < 0.3  # [F, H, W]
        counts = mask.flatten(1).sum(1)
        if (counts >= 8).float().mean() < 0.8:
            return False
        ys, xs = torch.meshgrid(torch.arange(mask.shape[1], device=video.device),
                                torch.arange(mask.shape[2], device=video.device), indexing="ij")
        w = mask.float()
        cx = (w * xs).flatten(1).sum(1) / counts.clamp(min=1)
        cy = (w * ys).flatten(1).sum(1) / counts.clamp(min=1)
        dx, dy = float(cx[-3:].mean() - cx[:3].mean()), float(cy[-3:].mean() - cy[:3].mean())
        ok = {"right": dx > 6 and abs(dx) > abs(dy), "left": dx < -6 and abs(dx) > abs(dy),
              "down": dy > 6 and abs(dy) > abs(dx), "up": dy < -6 and abs(dy) > abs(dx),
              "still": abs(dx) < 3 and abs(dy) < 3, "bounces": True}[motion]
        if not ok:
            return False
    return True


def save_strip(videos, prompts, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    frames = [0, 4, 8, 12, 16, 20]
    fig, axes = plt.subplots(len(videos), len(frames), figsize=(len(frames) * 1.3, len(videos) * 1.4))
    for i, (video, prompt) in enumerate(zip(videos, prompts)):
        for j, f in enumerate(frames):
            ax = axes[i][j]
            ax.imshow(((video[f].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(prompt[:28], fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--out", default="out")
    p.add_argument("--seeds", type=int, default=4, help="samples per evaluation prompt")
    p.add_argument("--parity-prompt", default="a red circle moves right")
    p.add_argument("--parity-seed", type=int, default=7)
    p.add_argument("--candidates", default="",
                   help="also evaluate these samplers, comma separated SAMPLER:STEPS:SHIFT (e.g. euler:8:3)")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cuda")
    model = load_model(args.weights, device)
    steps = len(recipe.PIPELINE["denoising_steps"])

    from safetensors.torch import save_file
    noise = make_noise(args.parity_seed, 1, steps, device)[0]
    latents = sample(model, [args.parity_prompt], [noise], device)[0]
    save_file({k: v.contiguous() for k, v in noise.items()}, os.path.join(args.out, "parity-noise.safetensors"))
    save_file({"latents": latents.cpu().contiguous()}, os.path.join(args.out, "parity-torch.safetensors"),
              {"prompt": args.parity_prompt, "seed": str(args.parity_seed)})

    report = {}
    pipelines = [("default", recipe.PIPELINE)]
    for candidate in filter(None, args.candidates.split(",")):
        sampler, count, shift = candidate.split(":")
        steps_list = [1000 - i * 1000 // int(count) for i in range(int(count))]
        pipelines.append((candidate, dict(recipe.PIPELINE, sampler=sampler, shift=float(shift),
                                          denoising_steps=steps_list)))
    for name, pipeline in pipelines:
        # The sweep may use TF32 (it only ranks samplers); the parity sample above ran in full fp32.
        torch.backends.cuda.matmul.allow_tf32 = name != "default"
        prompts = [pr for pr in EVAL_PROMPTS for _ in range(args.seeds)]
        noises = make_noise(1000, len(prompts), len(pipeline["denoising_steps"]), device)
        videos = sample(model, prompts, noises, device, pipeline)
        passed = [follows(v, pr) for v, pr in zip(videos, prompts)]
        rate = sum(passed) / len(passed)
        report[name] = {"rate": rate, "per_prompt": {pr: sum(ok for ok, q in zip(passed, prompts) if q == pr)
                                                     for pr in EVAL_PROMPTS}}
        print(f"{name}: prompt following {sum(passed)}/{len(passed)} = {rate:.3f}", flush=True)
        if name == "default":
            save_strip(videos[::args.seeds][:10], prompts[::args.seeds][:10], os.path.join(args.out, "samples.png"))
    with open(os.path.join(args.out, "prompt-following.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
