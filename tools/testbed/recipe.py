"""The testbed model and its sampling schedule: one place for the numbers that models/testbed/testbed.yaml repeats
for the engine (tests/test_testbed.cpp checks that the shipped weights load under that YAML)."""

from procedural import VOCABULARY

MODEL = dict(
    dim=256, ffn_dim=1024, freq_dim=256, heads=4, layers=6, text_dim=64, text_len=32, in_channels=3,
    out_channels=3, patch=[1, 4, 4], latent_height=64, latent_width=64, vocab=len(VOCABULARY), eps=1e-6,
    rope_theta=10000.0,
)

CHUNK_FRAMES = 3
FRAMES = 21  # 7 chunks

# Sampling: 8 Euler steps of the flow ODE on the engine's warped schedule with shift 3, refresh pass at t = 0.
# (Self-Forcing's fresh-noise sampler needs a distilled model; on this flow-matching model it returned the
# conditional mean, a blank background: docs/testbed.md has the comparison.)
PIPELINE = dict(denoising_steps=[1000, 875, 750, 625, 500, 375, 250, 125], warp=True, shift=3.0, context_noise=0,
                sampler="euler")


def engine_schedule(pipeline=PIPELINE):
    """(timesteps, sigmas) exactly as lib/pipeline/scheduler.cpp computes them (float32 table, nearest lookup)."""
    import numpy as np
    train_steps = 1000
    shift = np.float32(pipeline["shift"])
    raw = np.float32(1.0) - np.arange(train_steps, dtype=np.float32) * np.float32(1.0 / train_steps)
    table_sigmas = (shift * raw / (np.float32(1.0) + (shift - np.float32(1.0)) * raw)).astype(np.float32)
    table_timesteps = (table_sigmas * np.float32(train_steps)).astype(np.float32)
    timesteps, sigmas = [], []
    for step in pipeline["denoising_steps"]:
        t = float(step)
        if pipeline["warp"]:
            position = train_steps - int(step)
            t = 0.0 if position == train_steps else float(table_timesteps[position])
        best = int(np.argmin(np.abs(table_timesteps.astype(np.float64) - t)))
        timesteps.append(t)
        sigmas.append(float(table_sigmas[best]))
    return timesteps, sigmas
