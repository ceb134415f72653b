"""The PCCD denoiser: a conditional U-Net over the crystal tensor seen as a 3-channel 128 x 3 image.

The network maps (x_t, t, conditions) -> predicted noise and knows nothing of the diffusion process
(that is :mod:`pccd_hpc.model.diffusion`). Layout, following the paper and its reference code:

* one initial convolution, then ``n_levels`` levels; each has ResNet blocks (with the time and
  condition embedding injected as scale/shift), optional linear attention and a downsampling
  convolution that halves the 128 axis only (the last level keeps its resolution);
* a middle of full softmax attention layers between ResNet blocks ("intra-data correlation");
* the mirror path up with skip connections, a final ResNet block and a 1x1 output convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pccd_hpc.config import UNetConfig
from pccd_hpc.model.conditioning import ConditionEncoder, Conditions, SinusoidalEmbedding


class ResBlock(nn.Module):
    """conv-norm-(scale, shift)-SiLU, conv-norm-SiLU, plus a (1x1 projected) residual: (B,Ci,H,W)->(B,Co,H,W)."""

    def __init__(self, dim_in: int, dim_out: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(groups, dim_out)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, dim_out)
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * dim_out))
        self.skip = nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm1(self.conv1(x))
        h = F.silu(h * (1 + scale) + shift)
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class LinearAttention(nn.Module):
    """Pre-normed residual linear attention (softmax over features for q, positions for k): O(n) in positions."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        hidden = heads * dim_head
        self.norm = nn.GroupNorm(1, dim)
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), nn.GroupNorm(1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(b, 3, self.heads, -1, h * w).unbind(1)
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v / (h * w))
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, h, w)
        return x + self.to_out(out)


class Attention(nn.Module):
    """Pre-normed residual full softmax attention over all positions of the feature map."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        hidden = heads * dim_head
        self.norm = nn.GroupNorm(1, dim)
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(b, 3, self.heads, -1, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, d)
        return x + self.to_out(out.transpose(-1, -2).reshape(b, -1, h, w))


def _downsample(dim_in: int, dim_out: int) -> nn.Module:
    """Halve the 128 axis, keep the 3 axis: (B,Ci,H,3) -> (B,Co,H/2,3)."""
    return nn.Conv2d(dim_in, dim_out, (4, 3), stride=(2, 1), padding=1)


def _upsample(dim_in: int, dim_out: int) -> nn.Module:
    """Double the 128 axis: (B,Ci,H,3) -> (B,Co,2H,3)."""
    return nn.Sequential(nn.Upsample(scale_factor=(2, 1), mode="nearest"), nn.Conv2d(dim_in, dim_out, 3, padding=1))


class _Level(nn.Module):
    """ResNet blocks, optional linear attention, and a resampling layer (or a same-size conv)."""

    def __init__(self, blocks: list[ResBlock], attn: nn.Module | None, resample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = attn if attn is not None else nn.Identity()
        self.resample = resample


class UNet(nn.Module):
    """eps_theta(x_t, t, cond): (B, 3, 128, 3) float, (B,) int timesteps, :class:`Conditions` -> (B, 3, 128, 3)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        cfg, base, groups = config, config.base_width, config.norm_groups
        widths = [base] + [base * m for m in cfg.width_mults]  # level i runs at widths[i]; middle at widths[-1]
        emb_dim = 2 * cfg.cond_dim
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(base), nn.Linear(base, cfg.cond_dim), nn.GELU(), nn.Linear(cfg.cond_dim, cfg.cond_dim)
        )
        self.cond_embed = ConditionEncoder(cfg.cond_dim, cfg.element_emb_dim, cfg.num_magnetic_classes,
                                           site_condition=cfg.site_condition)
        self.init_conv = nn.Conv2d(cfg.in_channels + (2 if cfg.periodic_features else 0), base, (7, 3), padding=(3, 1))

        n_levels, attn_kw = cfg.n_levels, dict(heads=cfg.attn_heads, dim_head=cfg.attn_dim_head)
        self.downs = nn.ModuleList()
        for i in range(n_levels):
            w, w_next, last = widths[i], widths[i + 1], i == n_levels - 1
            blocks = [ResBlock(w, w, emb_dim, groups) for _ in range(cfg.blocks_per_level)]
            attn = LinearAttention(w, **attn_kw) if cfg.linear_attention[i] else None
            resample = nn.Conv2d(w, w_next, 3, padding=1) if last else _downsample(w, w_next)
            self.downs.append(_Level(blocks, attn, resample))

        mid = widths[-1]
        self.mid_blocks = nn.ModuleList([ResBlock(mid, mid, emb_dim, groups)])
        self.mid_attns = nn.ModuleList()
        for _ in range(cfg.mid_attention_blocks):
            self.mid_attns.append(Attention(mid, **attn_kw))
            self.mid_blocks.append(ResBlock(mid, mid, emb_dim, groups))

        self.ups = nn.ModuleList()
        for i in reversed(range(n_levels)):
            w, w_next, first = widths[i], widths[i + 1], i == 0
            blocks = [ResBlock(w_next + w, w_next, emb_dim, groups) for _ in range(cfg.blocks_per_level)]
            attn = LinearAttention(w_next, **attn_kw) if cfg.linear_attention[i] else None
            resample = nn.Conv2d(w_next, w, 3, padding=1) if first else _upsample(w_next, w)
            self.ups.append(_Level(blocks, attn, resample))

        self.final_block = ResBlock(2 * base, base, emb_dim, groups)
        self.final_conv = nn.Conv2d(base, cfg.in_channels, 1)

    def embed(self, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        """The per-sample embedding injected into every block: (B, 2 * cond_dim)."""
        return torch.cat([self.time_embed(t), self.cond_embed(cond)], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        emb = self.embed(t, cond)
        if self.config.periodic_features:
            x = torch.cat([x, periodic_position_features(x)], dim=1)
        x = self.init_conv(x)
        first = x
        skips: list[torch.Tensor] = []
        for level in self.downs:
            for block in level.blocks:
                x = block(x, emb)
                skips.append(x)
            x = level.resample(level.attn(x))
        x = self.mid_blocks[0](x, emb)
        for attn, block in zip(self.mid_attns, self.mid_blocks[1:]):
            x = block(attn(x), emb)
        for level in self.ups:
            for block in level.blocks:
                x = block(torch.cat([x, skips.pop()], dim=1), emb)
            x = level.resample(level.attn(x))
        x = self.final_block(torch.cat([x, first], dim=1), emb)
        return self.final_conv(x)


def periodic_position_features(x: torch.Tensor) -> torch.Tensor:
    """sin and cos of 2 pi f for the position channel of model-space tensors (B, C, n, 3), where x = 2 f - 1.

    Returns (B, 2, n, 3); the same for f and f + 1, so a shift across a cell face changes nothing.
    """
    angle = math.pi * (x[:, :1] + 1)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
