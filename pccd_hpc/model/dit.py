"""A transformer denoiser over the 128 point rows of the crystal tensor (DiT-style, Peebles & Xie 2023).

The (3, 128, 3) tensor is read as 128 point rows of 9 values (position xyz, element one-hot,
lattice row); ``patch_points`` consecutive rows form one token (``128 / patch_points`` tokens of
``9 * patch_points`` values). Tokens get a learned position embedding (the codec gives every atom
a fixed block of rows, so the row index carries meaning), then pass ``depth`` pre-norm transformer
blocks whose LayerNorms are modulated by the time and condition embedding (adaLN-Zero: scale,
shift and a zero-initialised residual gate per block), and a modulated linear head maps every
token back to its rows. Same interface as :class:`pccd_hpc.model.unet.UNet`:
``(x_t (B, 3, 128, 3), t (B,), Conditions) -> (B, 3, 128, 3)``.

Why a transformer here: all of its work is dense matrix products, which bf16 autocast runs on the
CPU's AMX units (about 3x fp32 on this machine) and on GPU tensor cores, so it buys far more
capacity per second than a U-Net of narrow convolutions; and every row attends to every other
row, which is what placing atoms at sensible distances from each other needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pccd_hpc.config import DiTConfig
from pccd_hpc.model.conditioning import ConditionEncoder, Conditions, SinusoidalEmbedding

N_CHANNELS, N_POINTS, N_COLUMNS = 3, 128, 3


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DiTBlock(nn.Module):
    """Pre-norm self-attention and MLP, each modulated and gated by the (B, width) embedding."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x (B, N, width), emb (B, width) -> (B, N, width)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(emb).chunk(6, dim=-1)
        b, n, w = x.shape
        h = _modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.qkv(h).reshape(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = x + gate1[:, None, :] * self.proj(attn)
        h = _modulate(self.norm2(x), shift2, scale2)
        return x + gate2[:, None, :] * self.mlp(h)


class DiT(nn.Module):
    """eps_theta (or v_theta) over point-row tokens: (B, 3, 128, 3), (B,) timesteps, Conditions -> (B, 3, 128, 3)."""

    def __init__(self, config: DiTConfig, num_magnetic_classes: int = 0, site_condition: bool = False) -> None:
        super().__init__()
        self.config = config
        width, patch = config.width, config.patch_points
        self.n_tokens = N_POINTS // patch
        self.token_dim = N_CHANNELS * N_COLUMNS * patch
        self.embed = nn.Linear(self.token_dim, width)
        self.pos = nn.Parameter(torch.randn(1, self.n_tokens, width) * 0.02)
        self.time_embed = nn.Sequential(SinusoidalEmbedding(width), nn.Linear(width, width), nn.SiLU(),
                                        nn.Linear(width, width))
        self.cond_embed = ConditionEncoder(width, config.element_emb_dim, num_magnetic_classes, site_condition=site_condition)
        self.blocks = nn.ModuleList(DiTBlock(width, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.head = nn.Linear(width, self.token_dim)
        for layer in (self.final_ada[1], self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 128, 3) -> (B, n_tokens, 9 * patch_points): each token is ``patch_points`` consecutive rows."""
        b = x.shape[0]
        return x.permute(0, 2, 1, 3).reshape(b, self.n_tokens, self.token_dim)

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_tokens`."""
        b = tokens.shape[0]
        return tokens.reshape(b, N_POINTS, N_CHANNELS, N_COLUMNS).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        emb = self.time_embed(t) + self.cond_embed(cond)
        h = self.embed(self.to_tokens(x)) + self.pos
        for block in self.blocks:
            h = block(h, emb)
        shift, scale = self.final_ada(emb).chunk(2, dim=-1)
        out = self.head(_modulate(self.final_norm(h), shift, scale))
        return self.from_tokens(out)
