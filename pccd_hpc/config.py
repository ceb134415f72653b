"""Configuration of the model, the diffusion process and training: validated dataclasses, presets, TOML.

Defaults are the paper's values (DDPM with T = 1000 and linear beta 1e-4 -> 0.02, a five-level U-Net of
base width 64 with multipliers 1, 2, 4, 8, 16). Presets are functions returning a :class:`RunConfig`;
users override any field with a TOML file whose tables mirror the dataclasses::

    [model]
    base_width = 32
    [train]
    batch_size = 64
    lr = 2e-4

The resolved configuration is written into every run folder and every checkpoint.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.stage_config import config_from_dict as _build, plain as _plain, require as _require

MAX_ATOMIC_NUMBER = 118
"""Element embeddings are indexed by atomic number 1..118; index 0 is the null (dropped) element."""


@dataclass
class UNetConfig:
    """Shape of the denoiser (:class:`pccd_hpc.model.unet.UNet`)."""

    in_channels: int = 3
    """Channels of the crystal tensor (positions, element one-hot, lattice)."""
    base_width: int = 64
    """Feature width of the first level."""
    width_mults: tuple[int, ...] = (1, 2, 4, 8, 16)
    """Width multiplier per level; one entry per level (the paper has five levels)."""
    blocks_per_level: int = 2
    """ResNet blocks per level on the way down (and up)."""
    linear_attention: tuple[bool, ...] = (True, True, True, True, True)
    """Whether each level has a linear-attention layer (one entry per level)."""
    mid_attention_blocks: int = 2
    """Full (softmax) attention layers in the middle, each followed by a ResNet block."""
    attn_heads: int = 4
    """Attention heads (linear and full)."""
    attn_dim_head: int = 32
    """Width of one attention head."""
    norm_groups: int = 8
    """GroupNorm groups; must divide every level's width."""
    cond_dim: int = 256
    """Width of the time and condition embeddings fed to every ResNet block."""
    element_emb_dim: int = 64
    """Width of one element-slot embedding (indexed by atomic number, 0 = null)."""
    num_magnetic_classes: int = 0
    """Magnetic-ordering classes in the data; 0 disables the magnetic condition."""

    def __post_init__(self) -> None:
        self.width_mults = tuple(int(m) for m in self.width_mults)
        self.linear_attention = tuple(bool(a) for a in self.linear_attention)
        _require(self.in_channels > 0, "in_channels", "must be positive")
        _require(self.base_width > 0, "base_width", "must be positive")
        _require(len(self.width_mults) >= 1, "width_mults", "needs at least one level")
        _require(all(m > 0 for m in self.width_mults), "width_mults", "must be positive")
        _require(
            len(self.linear_attention) == len(self.width_mults),
            "linear_attention",
            f"needs one entry per level ({len(self.width_mults)}), got {len(self.linear_attention)}",
        )
        _require(self.blocks_per_level >= 1, "blocks_per_level", "must be >= 1")
        _require(self.mid_attention_blocks >= 0, "mid_attention_blocks", "must be >= 0")
        _require(self.attn_heads > 0 and self.attn_dim_head > 0, "attn_heads", "heads and dim_head must be positive")
        for mult in self.width_mults:
            _require(
                (self.base_width * mult) % self.norm_groups == 0,
                "norm_groups",
                f"{self.norm_groups} does not divide level width {self.base_width * mult}",
            )
        _require(self.cond_dim > 0 and self.element_emb_dim > 0, "cond_dim", "embedding widths must be positive")
        _require(self.num_magnetic_classes >= 0, "num_magnetic_classes", "must be >= 0")

    @property
    def n_levels(self) -> int:
        """Number of resolution levels (the 128 axis is halved between consecutive levels)."""
        return len(self.width_mults)


@dataclass
class DiffusionConfig:
    """The DDPM forward process, its loss and the samplers (:mod:`pccd_hpc.model.diffusion`)."""

    timesteps: int = 1000
    """Number of diffusion steps T."""
    schedule: str = "linear"
    """Beta schedule: ``linear`` (the paper) or ``cosine`` (Nichol & Dhariwal)."""
    beta_start: float = 1e-4
    """First beta of the linear schedule."""
    beta_end: float = 0.02
    """Last beta of the linear schedule."""
    loss: str = "l2"
    """Epsilon-prediction loss: ``l2`` (paper default) or ``l1`` (reference code)."""
    cond_drop_prob: float = 0.2
    """Probability of replacing all conditions of a training sample by the null condition."""
    guidance_scale: float = 3.0
    """Classifier-free guidance scale w: eps = eps_u + w (eps_c - eps_u); 1 disables guidance."""
    sampler: str = "ddim"
    """Default sampler: ``ddpm`` (ancestral, T steps) or ``ddim``."""
    ddim_steps: int = 50
    """DDIM steps."""
    ddim_eta: float = 0.0
    """DDIM stochasticity (0 deterministic, 1 DDPM-like)."""
    ddpm_variance: str = "beta"
    """Ancestral-step variance: ``beta`` (paper eq. 4) or ``posterior`` (beta tilde)."""
    clip_x0: bool = True
    """Clip the predicted clean tensor to the data range while sampling."""

    def __post_init__(self) -> None:
        _require(self.timesteps >= 2, "timesteps", "must be >= 2")
        _require(self.schedule in ("linear", "cosine"), "schedule", f"must be linear or cosine, got {self.schedule!r}")
        _require(0 < self.beta_start < self.beta_end < 1, "beta_start", "need 0 < beta_start < beta_end < 1")
        _require(self.loss in ("l2", "l1"), "loss", f"must be l2 or l1, got {self.loss!r}")
        _require(0.0 <= self.cond_drop_prob < 1.0, "cond_drop_prob", "must be in [0, 1)")
        _require(self.guidance_scale >= 0.0, "guidance_scale", "must be >= 0")
        _require(self.sampler in ("ddpm", "ddim"), "sampler", f"must be ddpm or ddim, got {self.sampler!r}")
        _require(1 <= self.ddim_steps <= self.timesteps, "ddim_steps", "must be in [1, timesteps]")
        _require(0.0 <= self.ddim_eta <= 1.0, "ddim_eta", "must be in [0, 1]")
        _require(self.ddpm_variance in ("beta", "posterior"), "ddpm_variance", "must be beta or posterior")


@dataclass
class TrainConfig:
    """Optimisation, logging and checkpointing (:mod:`pccd_hpc.train.loop`)."""

    batch_size: int = 128
    """Global batch size (split evenly over the processes)."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: int = 500
    """Linear learning-rate warm-up steps (constant afterwards)."""
    max_steps: int = 100_000
    """Optimizer steps to train for."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold (0 disables)."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average of the weights."""
    seed: int = 0
    """Seed of model init, data order, noise and timesteps."""
    augment: bool = True
    """Random origin shifts and within-species permutations of every training sample."""
    num_workers: int = 0
    """DataLoader worker processes per training process."""
    log_every: int = 10
    """Steps between rows of metrics.jsonl."""
    checkpoint_every: int = 500
    """Steps between checkpoints (``last.pt`` and a periodic ``step-N.pt``)."""
    keep_checkpoints: int = 2
    """Periodic checkpoints kept (``last.pt`` is always kept)."""
    max_nonfinite_steps: int = 10
    """Consecutive NaN/inf losses tolerated (each step is skipped) before training stops with an error."""
    precision: str = "auto"
    """``auto`` (bf16 autocast on GPU, fp32 on CPU), ``bf16`` or ``fp32``."""
    compile: bool = False
    """Wrap the network in ``torch.compile``."""
    threads_per_process: int = 0
    """torch intra-op threads per process; 0 = cores available to this process / local processes."""

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _require(self.batch_size >= 1, "batch_size", "must be >= 1")
        _require(self.lr > 0, "lr", "must be positive")
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _require(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        _require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _require(self.max_steps >= 1, "max_steps", "must be >= 1")
        _require(self.grad_clip >= 0, "grad_clip", "must be >= 0")
        _require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")
        _require(self.num_workers >= 0, "num_workers", "must be >= 0")
        _require(self.log_every >= 1, "log_every", "must be >= 1")
        _require(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        _require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        _require(self.max_nonfinite_steps >= 1, "max_nonfinite_steps", "must be >= 1")
        _require(self.precision in ("auto", "bf16", "fp32"), "precision", "must be auto, bf16 or fp32")
        _require(self.threads_per_process >= 0, "threads_per_process", "must be >= 0")


@dataclass
class RunConfig:
    """Everything a training run needs besides paths: model, diffusion and training settings."""

    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = "paper"
    """Name of the preset this configuration started from (informational)."""

    def to_dict(self) -> dict[str, Any]:
        """Return plain nested dicts/lists (TOML-, JSON- and ``weights_only``-safe)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Build a validated config from nested dicts; unknown keys raise ``ValueError``."""
        data = dict(data)
        sections = {"model": UNetConfig, "diffusion": DiffusionConfig, "train": TrainConfig}
        kwargs: dict[str, Any] = {}
        for name, klass in sections.items():
            kwargs[name] = _build(klass, data.pop(name, {}), name)
        if "preset" in data:
            kwargs["preset"] = str(data.pop("preset"))
        if data:
            raise ValueError(f"unknown config section(s): {sorted(data)}")
        return cls(**kwargs)

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """Return a copy with nested ``overrides`` (same layout as the TOML file) applied."""
        merged = self.to_dict()
        for section, values in overrides.items():
            if section == "preset":
                merged["preset"] = values
                continue
            if section not in merged or not isinstance(values, dict):
                raise ValueError(f"unknown config section: {section!r}")
            merged[section].update(values)
        return RunConfig.from_dict(merged)


def paper_preset() -> RunConfig:
    """The paper's model: base width 64, multipliers 1,2,4,8,16 (~164M parameters); for GPU clusters."""
    return RunConfig(preset="paper")


def cpu_preset() -> RunConfig:
    """A ~2M-parameter model sized for a 2-core CPU box (>= 500 samples/s with bf16 autocast on AVX512-BF16).

    Width 16 at full resolution, attention only at the two lowest-resolution levels (linear) and
    one full-attention layer in the middle; bf16 autocast (weights, loss and optimizer stay fp32)
    roughly doubles CPU convolution speed on CPUs with AVX512-BF16/AMX; set ``precision = "fp32"``
    elsewhere.
    """
    model = UNetConfig(
        base_width=16,
        width_mults=(1, 2, 2, 4, 8),
        blocks_per_level=1,
        linear_attention=(False, False, False, True, True),
        mid_attention_blocks=1,
        attn_heads=4,
        attn_dim_head=16,
        cond_dim=128,
        element_emb_dim=32,
    )
    train = TrainConfig(batch_size=256, lr=5e-4, warmup_steps=200, max_steps=20_000, ema_decay=0.995,
                        checkpoint_every=250, log_every=10, precision="bf16")
    return RunConfig(model=model, train=train, preset="cpu")


def tiny_preset() -> RunConfig:
    """A very small model for tests (seconds per few steps on one core)."""
    model = UNetConfig(
        base_width=8,
        width_mults=(1, 1, 2, 2, 2),
        blocks_per_level=1,
        linear_attention=(False, False, False, True, True),
        mid_attention_blocks=1,
        attn_heads=2,
        attn_dim_head=8,
        cond_dim=32,
        element_emb_dim=8,
    )
    train = TrainConfig(batch_size=16, lr=1e-3, warmup_steps=5, max_steps=50, ema_decay=0.9,
                        checkpoint_every=10, log_every=1)
    return RunConfig(model=model, train=train, preset="tiny")


PRESETS: dict[str, Callable[[], RunConfig]] = {"paper": paper_preset, "cpu": cpu_preset, "tiny": tiny_preset}


def get_preset(name: str) -> RunConfig:
    """Return the named preset (``paper``, ``cpu`` or ``tiny``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]()


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML override file into nested dicts."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def save_toml(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as TOML, atomically."""
    atomic_write_text(path, tomli_w.dumps(config.to_dict()))


def resolve_config(preset: str = "paper", toml_path: str | Path | None = None,
                   overrides: dict[str, Any] | None = None) -> RunConfig:
    """Preset, then the TOML file, then explicit overrides (e.g. from the command line)."""
    config = get_preset(preset)
    if toml_path is not None:
        config = config.with_overrides(load_toml(toml_path))
    if overrides:
        config = config.with_overrides(overrides)
    return config
