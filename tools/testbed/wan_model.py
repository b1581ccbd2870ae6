"""The engine's causal Wan DiT in PyTorch, for training the testbed model and for sampling it as a reference.

Parameter names and shapes are those of the official Wan layout (the C++ loader reads the exported file exactly
as it reads a real checkpoint); the arithmetic follows lib/model/wan_dit.cpp op for op: per-frame modulation,
full-width q/k RMSNorm, interleaved 3D RoPE with a (t, h, w) split of the head's pairs, affine LayerNorm before
cross-attention, GELU(tanh) FFN, a head modulated by the time embedding itself.

One forward sees a sequence of frames with a frame -> (chunk, role) map: "clean" frames (timestep 0, the
refresh pass of the engine) and "noisy" frames (the chunk being denoised). A clean frame of chunk c attends to
clean frames of chunks <= c; a noisy frame of chunk c attends to clean frames of chunks < c and to the noisy frames
of chunk c. That is exactly what the engine's KV cache shows a chunk, so the same forward trains the model
(teacher forcing on all chunks at once) and samples it (the chunk loop without a cache).
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, **kw):
        self.dim = kw["dim"]
        self.ffn_dim = kw["ffn_dim"]
        self.freq_dim = kw["freq_dim"]
        self.heads = kw["heads"]
        self.layers = kw["layers"]
        self.text_dim = kw["text_dim"]
        self.text_len = kw["text_len"]
        self.channels = kw["in_channels"]
        self.patch = kw["patch"]  # [1, ph, pw]
        self.height = kw["latent_height"]
        self.width = kw["latent_width"]
        self.vocab = kw["vocab"]
        self.eps = kw.get("eps", 1e-6)
        self.rope_theta = kw.get("rope_theta", 10000.0)

    @property
    def head_dim(self):
        return self.dim // self.heads

    @property
    def grid(self):
        return self.height // self.patch[1], self.width // self.patch[2]

    @property
    def tokens_per_frame(self):
        return self.grid[0] * self.grid[1]


def rms_norm(x, weight, eps):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)) * weight


def layer_norm(x, eps, weight=None, bias=None):
    return F.layer_norm(x.float(), (x.shape[-1],), weight, bias, eps)


def sinusoid(timesteps, dim):
    """[N] timesteps -> [N, dim]: [cos(t w), sin(t w)], w_i = 10000^(-i/half), in float64 like the engine."""
    half = dim // 2
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64), -torch.arange(half, dtype=torch.float64) / half)
    angle = timesteps.double().view(-1, 1) * omega.to(timesteps.device).view(1, -1)
    return torch.cat([torch.cos(angle), torch.sin(angle)], 1).float()


def rope_tables(config, frame_positions, device):
    """cos/sin [frames * tokens_per_frame, head_dim / 2] for the given frame positions (float64 -> float32)."""
    pairs = config.head_dim // 2
    spatial = pairs // 3
    counts = [pairs - 2 * spatial, spatial, spatial]
    gh, gw = config.grid
    f = torch.tensor(frame_positions, dtype=torch.float64, device=device)
    rows = torch.arange(gh, dtype=torch.float64, device=device)
    cols = torch.arange(gw, dtype=torch.float64, device=device)
    pos_t = f.view(-1, 1, 1).expand(-1, gh, gw).reshape(-1)
    pos_h = rows.view(1, -1, 1).expand(len(frame_positions), gh, gw).reshape(-1)
    pos_w = cols.view(1, 1, -1).expand(len(frame_positions), gh, gw).reshape(-1)
    angles = []
    for positions, n in zip((pos_t, pos_h, pos_w), counts):
        omega = torch.pow(torch.tensor(config.rope_theta, dtype=torch.float64), -torch.arange(n, device=device,
                                                                                             dtype=torch.float64) / n)
        angles.append(positions.view(-1, 1) * omega.view(1, -1))
    angle = torch.cat(angles, 1)
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x, cos, sin):
    """x [B, L, H, D] with interleaved pairs (x0, x1) rotated by the angle of each token and pair."""
    x32 = x.float()
    x0, x1 = x32[..., 0::2], x32[..., 1::2]
    c, s = cos.view(1, -1, 1, cos.shape[-1]), sin.view(1, -1, 1, sin.shape[-1])
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], -1)
    return out.flatten(-2).to(x.dtype)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c.dim
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / math.sqrt(d))
        self.self_attn = nn.Module()
        self.cross_attn = nn.Module()
        for module in (self.self_attn, self.cross_attn):
            for name in "qkvo":
                setattr(module, name, nn.Linear(d, d))
            module.norm_q = nn.Module()
            module.norm_k = nn.Module()
            module.norm_q.weight = nn.Parameter(torch.ones(d))
            module.norm_k.weight = nn.Parameter(torch.ones(d))
        self.norm3 = nn.LayerNorm(d, eps=c.eps, elementwise_affine=True)
        self.ffn = nn.Sequential(nn.Linear(d, c.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(c.ffn_dim, d))
        self.c = c

    def forward(self, x, e0, text_k, text_v, cos, sin, attend):
        """x [B, F, T, d] f32 (frames x tokens of a frame); e0 [B, F, 6, d] the time part of the per-frame
        modulation; attend(q, k, v) on [B, L, H, D] -> [B, L, H, D]."""
        c = self.c
        B, Fr, T, d = x.shape
        L = Fr * T
        m = [row.unsqueeze(2) for row in (self.modulation.unsqueeze(0) + e0).unbind(2)]  # six [B, F, 1, d]
        h = layer_norm(x, c.eps) * (1 + m[1]) + m[0]
        a = self.self_attn
        v = a.v(h).view(B, L, c.heads, c.head_dim)
        q = rms_norm(a.q(h), a.norm_q.weight, c.eps).view(B, L, c.heads, c.head_dim)
        k = rms_norm(a.k(h), a.norm_k.weight, c.eps).view(B, L, c.heads, c.head_dim)
        q, k = apply_rope(q, cos, sin).to(v.dtype), apply_rope(k, cos, sin).to(v.dtype)
        y = attend(q, k, v).reshape(B, Fr, T, d)
        x = x + a.o(y).float() * m[2]
        hc = self.norm3(x.float())
        ca = self.cross_attn
        qc = rms_norm(ca.q(hc), ca.norm_q.weight, c.eps).view(B, L, c.heads, c.head_dim).transpose(1, 2)
        yc = F.scaled_dot_product_attention(qc.to(text_v.dtype), text_k.to(text_v.dtype), text_v)
        x = x + ca.o(yc.transpose(1, 2).reshape(B, Fr, T, d)).float()
        hf = layer_norm(x, c.eps) * (1 + m[4]) + m[3]
        x = x + self.ffn(hf).float() * m[5]
        return x


class WanTestbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c.dim
        ph, pw = c.patch[1], c.patch[2]
        self.patch_embedding = nn.Conv3d(c.channels, d, tuple(c.patch), stride=tuple(c.patch))
        self.text_embedding = nn.Sequential(nn.Linear(c.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(c.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.layers)])
        self.head = nn.Module()
        self.head.modulation = nn.Parameter(torch.randn(1, 2, d) / math.sqrt(d))
        self.head.head = nn.Linear(d, c.channels * ph * pw)
        # The word-table text encoder: a row per word (+ row 0 for unknown words) and a row per position.
        self.text_encoder = nn.Module()
        self.text_encoder.word_table = nn.Parameter(torch.randn(c.vocab + 1, c.text_dim))
        self.text_encoder.position_table = nn.Parameter(0.1 * torch.randn(c.text_len, c.text_dim))
        nn.init.zeros_(self.head.head.weight)
        nn.init.zeros_(self.head.head.bias)

    # ---- text -----------------------------------------------------------------------------------------------
    def encode_text(self, ids):
        """ids [B, text_len] (word id, -1 = padding) -> [B, text_len, text_dim]; padding rows are zero."""
        valid = (ids >= 0).unsqueeze(-1)
        rows = self.text_encoder.word_table[ids.clamp(min=0)] + self.text_encoder.position_table.unsqueeze(0)
        return torch.where(valid, rows, torch.zeros_like(rows))

    def text_kv(self, context):
        c = self.c
        text = self.text_embedding(context)
        B = text.shape[0]
        ks, vs = [], []
        for block in self.blocks:
            ca = block.cross_attn
            k = rms_norm(ca.k(text), ca.norm_k.weight, c.eps).view(B, -1, c.heads, c.head_dim).transpose(1, 2)
            v = ca.v(text).view(B, -1, c.heads, c.head_dim).transpose(1, 2)
            ks.append(k)
            vs.append(v)
        return ks, vs

    # ---- time -----------------------------------------------------------------------------------------------
    def time_terms(self, timesteps):
        """timesteps [N] -> e [N, d], e0 [N, 6, d]."""
        e = self.time_embedding(sinusoid(timesteps, self.c.freq_dim))
        e0 = self.time_projection(e).view(-1, 6, self.c.dim)
        return e.float(), e0.float()

    # ---- body -----------------------------------------------------------------------------------------------
    def patchify(self, frames):
        """[B, F, C, H, W] -> tokens [B, F * gh * gw, C * ph * pw] in (c, q, r) order (Conv3d's weight layout)."""
        B, Fr, C, H, W = frames.shape
        ph, pw = self.c.patch[1], self.c.patch[2]
        x = frames.reshape(B, Fr, C, H // ph, ph, W // pw, pw).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(B, Fr * (H // ph) * (W // pw), C * ph * pw)

    def unpatchify(self, tokens, frames):
        c = self.c
        gh, gw = c.grid
        ph, pw = c.patch[1], c.patch[2]
        B = tokens.shape[0]
        x = tokens.view(B, frames, gh, gw, ph, pw, c.channels).permute(0, 1, 6, 2, 4, 3, 5)
        return x.reshape(B, frames, c.channels, gh * ph, gw * pw)

    def forward(self, frames, frame_timesteps, frame_positions, text_k, text_v, attend, head_frames=None):
        """frames [B, F, C, H, W]; frame_timesteps [B, F]; returns the flow prediction of the frames in the slice
        head_frames (default all) as [B, F', C, H, W]."""
        c = self.c
        B, Fr = frames.shape[:2]
        T = c.tokens_per_frame
        w = self.patch_embedding.weight.view(c.dim, -1)
        x = F.linear(self.patchify(frames).to(w.dtype), w, self.patch_embedding.bias).float().view(B, Fr, T, c.dim)
        e, e0 = self.time_terms(frame_timesteps.reshape(-1))
        e, e0 = e.view(B, Fr, c.dim), e0.view(B, Fr, 6, c.dim)
        cos, sin = rope_tables(c, frame_positions, frames.device)
        for block, k, v in zip(self.blocks, text_k, text_v):
            x = block(x, e0, k, v, cos, sin, attend)
        if head_frames is not None:
            x, e = x[:, head_frames], e[:, head_frames]
        mod = self.head.modulation.unsqueeze(0)  # [1, 1, 2, d]
        shift, scale = (mod[:, :, 0] + e).unsqueeze(2), (mod[:, :, 1] + e).unsqueeze(2)
        out = self.head.head(layer_norm(x, c.eps) * (1 + scale) + shift).float()
        return self.unpatchify(out.reshape(B, -1, out.shape[-1]), x.shape[1])


# ---- attention masks ---------------------------------------------------------------------------------------------

def frame_roles(chunks, chunk_frames, with_clean, noisy_chunks):
    """Per frame (chunk, is_noisy): clean frames of chunks [0, chunks) if with_clean, then noisy frames of the
    listed chunks."""
    roles = []
    if with_clean:
        roles += [(ch, False) for ch in range(chunks) for _ in range(chunk_frames)]
    roles += [(ch, True) for ch in noisy_chunks for _ in range(chunk_frames)]
    return roles


def visibility(roles, tokens_per_frame, device):
    """Token-level boolean mask [L, L]: True where the query may attend to the key."""
    chunk = torch.tensor([r[0] for r in roles], device=device).repeat_interleave(tokens_per_frame)
    noisy = torch.tensor([r[1] for r in roles], device=device).repeat_interleave(tokens_per_frame)
    qc, kc = chunk.view(-1, 1), chunk.view(1, -1)
    qn, kn = noisy.view(-1, 1), noisy.view(1, -1)
    clean_key_ok = (~kn) & ((~qn & (kc <= qc)) | (qn & (kc < qc)))
    noisy_key_ok = kn & qn & (kc == qc)
    return clean_key_ok | noisy_key_ok


def sdpa_attend(mask):
    def attend(q, k, v):
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             attn_mask=mask)
        return out.transpose(1, 2)
    return attend


def flex_attend(roles, tokens_per_frame, device, compiled_flex):
    """Block-sparse attention with the same visibility through FlexAttention (skips invisible 128-token tiles)."""
    from torch.nn.attention.flex_attention import create_block_mask
    chunk = torch.tensor([r[0] for r in roles], device=device).repeat_interleave(tokens_per_frame)
    noisy = torch.tensor([r[1] for r in roles], device=device).repeat_interleave(tokens_per_frame)

    def mask_mod(b, h, q_idx, kv_idx):
        qc, kc = chunk[q_idx], chunk[kv_idx]
        qn, kn = noisy[q_idx], noisy[kv_idx]
        clean_ok = (~kn) & (((~qn) & (kc <= qc)) | (qn & (kc < qc)))
        return clean_ok | (kn & qn & (kc == qc))

    L = len(roles) * tokens_per_frame
    block_mask = create_block_mask(mask_mod, None, None, L, L, device=device)

    def attend(q, k, v):
        out = compiled_flex(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), block_mask=block_mask)
        return out.transpose(1, 2)
    return attend


# ---- export ------------------------------------------------------------------------------------------------------

def official_state_dict(model, dtype=torch.bfloat16):
    """Tensors under the official names the C++ loader expects (nn.Sequential indices are already Wan's)."""
    out = {}
    for name, tensor in model.state_dict().items():
        out[name] = tensor.detach().to(dtype).contiguous().cpu()
    return out
