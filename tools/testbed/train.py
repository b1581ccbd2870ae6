#!/usr/bin/env python3
"""Trains the testbed model on procedural clips (run on the GPU machine; docs/testbed.md has the recipe and the
command that made the shipped weights).

Objective: flow matching with teacher forcing on clean context. Each training sequence holds a clip twice: its
clean frames (timestep 0) and a noised copy in which every 3-frame chunk has its own noise level. With the
visibility of wan_model.visibility, the noisy chunk c sees the clean chunks before it and itself — what the
engine's KV cache (filled by the refresh pass at t = 0) shows chunk c during sampling — so one forward trains all
seven chunk positions at once. Loss: MSE between the predicted and the true velocity (noise - x0) on noisy frames.

    python3 tools/testbed/train.py --minutes 8.5 --out $OUT
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procedural  # noqa: E402
import recipe  # noqa: E402
import wan_model  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=8.5, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = time only)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--ema", type=float, default=0.998)
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--schedule-fraction", type=float, default=0.5,
                   help="share of chunks noised to one of the sampler's levels (the rest: shifted uniform)")
    p.add_argument("--schedule-sigmas", default="",
                   help="comma-separated noise levels of the sampler (default: recipe.PIPELINE's schedule)")
    p.add_argument("--sigma-shift", type=float, default=1.0, help="sigma = s u / (1 + (s - 1) u), u uniform")
    p.add_argument("--context-corruption", type=float, default=0.0,
                   help="share of clips whose clean context is degraded (blur + noise) like generated frames")
    p.add_argument("--attention", choices=["flex", "sdpa"], default="flex")
    p.add_argument("--compile", action="store_true", help="torch.compile each block")
    p.add_argument("--init", default="", help="start from these weights (comma-separated safetensors files, official names)")
    p.add_argument("--out", default="out")
    return p.parse_args()


def make_attend(args, device, tokens_per_frame):
    chunks = recipe.FRAMES // recipe.CHUNK_FRAMES
    roles = wan_model.frame_roles(chunks, recipe.CHUNK_FRAMES, True, range(chunks))
    if args.attention == "flex":
        try:
            from torch.nn.attention.flex_attention import flex_attention
            compiled = torch.compile(flex_attention, dynamic=False)
            attend = wan_model.flex_attend(roles, tokens_per_frame, device, compiled)
            q = torch.randn(2, len(roles) * tokens_per_frame, 4, 64, device=device, dtype=torch.bfloat16)
            attend(q, q, q)  # compile now, fail here rather than mid-run
            return attend, "flex"
        except Exception as error:  # noqa: BLE001 - any failure means: use the plain path
            print(f"flex attention unavailable ({type(error).__name__}: {error}); using SDPA with a mask")
    mask = wan_model.visibility(roles, tokens_per_frame, device)
    return wan_model.sdpa_attend(mask), "sdpa"


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda")
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    config = wan_model.Config(**recipe.MODEL)
    model = wan_model.WanTestbed(config).to(device)
    if args.init:
        from safetensors.torch import load_file
        state = {}
        for path in args.init.split(","):
            state.update({k: v.float() for k, v in load_file(path).items()})
        model.load_state_dict(state)
        print(f"initialised from {args.init}")
    params = sum(p.numel() for p in model.parameters())
    print(f"testbed model: {params} parameters, {config.tokens_per_frame} tokens per frame, vocabulary "
          f"{len(procedural.VOCABULARY)} words")
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or "modulation" in name or "table" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0}],
                                  lr=args.lr, betas=(0.9, 0.99), fused=True)
    attend, attention_kind = make_attend(args, device, config.tokens_per_frame)
    if args.compile:
        for block in model.blocks:
            block.compile(dynamic=False)

    frames, chunk_frames = recipe.FRAMES, recipe.CHUNK_FRAMES
    chunks = frames // chunk_frames
    positions = list(range(frames)) * 2
    _, schedule_sigmas = recipe.engine_schedule()
    if args.schedule_sigmas:
        schedule_sigmas = [float(s) for s in args.schedule_sigmas.split(",")]
    schedule_sigmas = torch.tensor(schedule_sigmas, device=device)
    budget = args.minutes * 60
    started = time.time()
    log = []
    step = 0
    while True:
        elapsed = time.time() - started
        if elapsed > budget or (args.max_steps and step >= args.max_steps):
            break
        progress = min(1.0, elapsed / budget)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in optimizer.param_groups:
            group["lr"] = lr

        with torch.no_grad():
            x0, ids, _ = procedural.batch(rng, args.batch, frames, 64, config.text_len, device)
            B = x0.shape[0]
            # Some chunks at one of the sampler's noise levels, the rest anywhere in (0, 1] (shifted to the noisy
            # end, where a chunk's layout is decided).
            pick = torch.randint(0, len(schedule_sigmas), (B, chunks), device=device)
            u = torch.rand(B, chunks, device=device).clamp(min=1e-3)
            shifted = args.sigma_shift * u / (1 + (args.sigma_shift - 1) * u)
            at_schedule = torch.rand(B, chunks, device=device) < args.schedule_fraction
            sigma = torch.where(at_schedule, schedule_sigmas[pick], shifted)
            sigma_frames = sigma.repeat_interleave(chunk_frames, 1)  # [B, F]
            noise = torch.randn_like(x0)
            s = sigma_frames.view(B, frames, 1, 1, 1)
            noisy = (1 - s) * x0 + s * noise
            target = noise - x0
            context = x0
            if args.context_corruption > 0:
                # At sampling time the context is the model's own x0 (softer, with patch artifacts), not the
                # training clip: degrade it by a random blend towards a 4x4-block average plus noise, so that the
                # model learns to continue an imperfect past instead of letting objects fade.
                blocky = torch.nn.functional.avg_pool2d(x0.flatten(0, 1), 4)
                blocky = torch.nn.functional.interpolate(blocky, scale_factor=4, mode="nearest").view_as(x0)
                amount = torch.rand(B, 1, 1, 1, 1, device=device) * 0.6
                amount = amount * (torch.rand(B, 1, 1, 1, 1, device=device) < args.context_corruption)
                context = x0 + amount * (blocky - x0) + amount * 0.15 * torch.randn_like(x0)
            inputs = torch.cat([context, noisy], 1)
            timesteps = torch.cat([torch.zeros_like(sigma_frames), 1000 * sigma_frames], 1)

        with torch.autocast("cuda", dtype=torch.bfloat16):
            context = model.encode_text(ids)
            text_k, text_v = model.text_kv(context)
            pred = model(inputs, timesteps, positions, text_k, text_v, attend, head_frames=slice(frames, 2 * frames))
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            d = min(args.ema, (1 + step) / (10 + step))
            for k, v in model.state_dict().items():
                ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
        step += 1
        if step % 25 == 0 or step == 1:
            entry = {"step": step, "seconds": round(time.time() - started, 1), "loss": round(loss.item(), 5),
                     "grad_norm": round(float(grad_norm), 4), "lr": lr}
            log.append(entry)
            print(json.dumps(entry), flush=True)

    seconds = time.time() - started
    print(f"trained {step} steps in {seconds:.0f} s ({attention_kind} attention, batch {args.batch}), "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    from safetensors.torch import save_file
    model.load_state_dict(ema)
    metadata = {"format": "lightforce-wan", "model": "testbed", "vocabulary": " ".join(procedural.VOCABULARY),
                "steps": str(step), "batch": str(args.batch), "seed": str(args.seed)}
    save_file(wan_model.official_state_dict(model), os.path.join(args.out, "testbed.safetensors"), metadata)
    # fp32 EMA weights in two halves (each returned file must stay under 16 MiB) to continue training later.
    state = {k: v.float().contiguous().cpu() for k, v in ema.items()}
    names = sorted(state)
    for part, chunk in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        save_file({k: state[k] for k in chunk}, os.path.join(args.out, f"testbed-fp32-{part}.safetensors"))
    with open(os.path.join(args.out, "train-log.json"), "w") as f:
        json.dump({"args": vars(args), "steps": step, "seconds": seconds, "attention": attention_kind,
                   "parameters": params, "log": log}, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([e["step"] for e in log], [e["loss"] for e in log])
        ax.set_xlabel("step")
        ax.set_ylabel("flow-matching MSE")
        ax.set_yscale("log")
        ax.set_title(f"testbed training ({step} steps, batch {args.batch})")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(args.out, "loss.png"), dpi=110)
    except Exception as error:  # noqa: BLE001 - the plot is a convenience
        print(f"no loss plot: {error}")


if __name__ == "__main__":
    main()
