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
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from pccd_hpc.data.augmentation import Augmentation
from pccd_hpc.io_utils import atomic_write_text
from pccd_hpc.stage_config import config_from_dict as _build, plain as _plain, require as _require

log = logging.getLogger(__name__)

RETIRED_FIELDS = {"diffusion": ("guidance_scale", "sampler", "ddim_steps", "ddim_eta")}
"""Fields older configs and checkpoints hold that nothing reads any more (sampling settings are flags of the
stages that sample): ignored with a warning when such a config is loaded, so old checkpoints keep loading."""

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
    periodic_features: bool = False
    """Also feed sin and cos of 2 pi x the noisy fractional coordinates (channel 0) to the first convolution,
    so that atoms on either side of a cell face (f near 0 and near 1) look close, as they are; off in the
    paper's network."""
    site_condition: bool = False
    """Also condition on the number of sites (applies to both denoisers). Samplers draw the count from the
    training set's distribution for the number of elements (or take the user's); reconstruction withholds
    it. Off in the paper's network."""

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
class DiTConfig:
    """Shape of the transformer denoiser (:class:`pccd_hpc.model.dit.DiT`), used when ``RunConfig.denoiser = "dit"``."""

    width: int = 256
    """Token width."""
    depth: int = 8
    """Transformer blocks."""
    heads: int = 4
    """Attention heads; must divide ``width``."""
    mlp_ratio: float = 4.0
    """MLP hidden width / token width."""
    patch_points: int = 4
    """Consecutive point rows per token (128 / patch_points tokens); must divide 128."""
    element_emb_dim: int = 64
    """Width of one element-slot embedding (indexed by atomic number, 0 = null)."""

    def __post_init__(self) -> None:
        _require(self.width > 0, "width", "must be positive")
        _require(self.depth >= 1, "depth", "must be >= 1")
        _require(self.heads > 0 and self.width % self.heads == 0, "heads", f"must divide width {self.width}")
        _require(self.mlp_ratio > 0, "mlp_ratio", "must be positive")
        _require(self.patch_points >= 1 and 128 % self.patch_points == 0, "patch_points", "must divide 128")
        _require(self.element_emb_dim > 0, "element_emb_dim", "must be positive")


@dataclass
class DiffusionConfig:
    """The DDPM forward process, its loss and the sampler settings fixed at training (:mod:`pccd_hpc.model.diffusion`).

    How a model is sampled (sampler, steps, guidance) is not part of it: those are the ``--sampler``,
    ``--steps`` and ``--guidance`` flags of generate, reconstruct and evaluate.
    """

    timesteps: int = 1000
    """Number of diffusion steps T."""
    schedule: str = "linear"
    """Beta schedule: ``linear`` (the paper) or ``cosine`` (Nichol & Dhariwal)."""
    beta_start: float = 1e-4
    """First beta of the linear schedule."""
    beta_end: float = 0.02
    """Last beta of the linear schedule."""
    loss: str = "l2"
    """Regression loss: ``l2`` (paper default) or ``l1`` (reference code)."""
    prediction: str = "eps"
    """What the network predicts: ``eps`` (the paper) or ``v`` (Salimans & Ho 2022: v = sqrt(ab) eps - sqrt(1-ab) x0)."""
    loss_weighting: str = "none"
    """Per-timestep loss weight: ``none`` (the paper) or ``min_snr`` (Hang et al. 2023, min(SNR, gamma) based)."""
    min_snr_gamma: float = 5.0
    """gamma of the min-SNR weighting."""
    distance_loss_weight: float = 0.0
    """Weight of the auxiliary pair-distance loss (Angstrom; :mod:`pccd_hpc.model.distance_loss`); 0 = off (the paper)."""
    cond_drop_prob: float = 0.2
    """Probability of replacing all conditions of a training sample by the null condition."""
    ddpm_variance: str = "beta"
    """Ancestral-step variance: ``beta`` (paper eq. 4) or ``posterior`` (beta tilde)."""
    clip_x0: bool = True
    """Clip the predicted clean tensor to the data range while sampling."""

    def __post_init__(self) -> None:
        _require(self.timesteps >= 2, "timesteps", "must be >= 2")
        _require(self.schedule in ("linear", "cosine"), "schedule", f"must be linear or cosine, got {self.schedule!r}")
        _require(0 < self.beta_start < self.beta_end < 1, "beta_start", "need 0 < beta_start < beta_end < 1")
        _require(self.loss in ("l2", "l1"), "loss", f"must be l2 or l1, got {self.loss!r}")
        _require(self.prediction in ("eps", "v"), "prediction", f"must be eps or v, got {self.prediction!r}")
        _require(self.loss_weighting in ("none", "min_snr"), "loss_weighting",
                 f"must be none or min_snr, got {self.loss_weighting!r}")
        _require(self.min_snr_gamma > 0, "min_snr_gamma", "must be positive")
        _require(self.distance_loss_weight >= 0, "distance_loss_weight", "must be >= 0")
        _require(0.0 <= self.cond_drop_prob < 1.0, "cond_drop_prob", "must be in [0, 1)")
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
    """Linear learning-rate warm-up steps."""
    lr_decay: str = "none"
    """After warm-up: ``none`` (constant, the paper) or ``cosine`` (down to ``min_lr_ratio`` x lr at ``max_steps``)."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of ``lr``."""
    max_steps: int = 100_000
    """Optimizer steps to train for."""
    max_minutes: float = 0.0
    """Wall-clock budget of this invocation in minutes (0 = none): training stops at the first step past it,
    writes a checkpoint and returns; running the command again continues."""
    grad_clip: float = 1.0
    """Gradient-norm clipping threshold (0 disables)."""
    ema_decay: float = 0.999
    """Decay of the exponential moving average of the weights."""
    ema_warmup: bool = True
    """Ramp the EMA decay up as min(ema_decay, (1 + step) / (10 + step)), matching the average to short runs."""
    seed: int = 0
    """Seed of model init, data order, noise and timesteps."""
    init_from: str = ""
    """Checkpoint (run folder, ``step-N/`` folder or exported file) whose EMA weights start a fresh run:
    fine-tuning, with a new optimizer and learning-rate schedule. The network may add input channels
    (``periodic_features``) or the number of sites as a condition (``site_condition``); their input
    weights start at zero, so the start is the source model. Every other weight must match. Ignored once the run folder has a checkpoint of its own (the run then resumes)."""
    augment: bool = True
    """Random origin shifts (and, with ``site_order = "random"``, within-species permutations) of every sample."""
    origin: str = "random"
    """Origin of each augmented sample: ``random`` (a uniform shift, the paper's translation augmentation) or
    ``anchor`` (a randomly chosen atom of the first species at the cell centre: positions become positions
    relative to an atom, removing the translation freedom the network would otherwise have to model)."""
    site_order: str = "random"
    """Order of the atoms within a species after the origin shift: ``random`` (a fresh permutation per
    sample, the model must learn permutation invariance) or ``canonical`` (sorted by shifted fractional
    coordinates, one deterministic layout per shifted crystal)."""
    invert_prob: float = 0.0
    """Probability that an augmented sample is inverted through the origin first (fractional coordinates
    negated, lattice kept): the crystal itself if centrosymmetric, else its mirror image, with the same
    lattice, bonds and energy; a symmetry of the data that neither the shift nor the site order supplies."""
    supercell_prob: float = 0.0
    """Probability that an augmented sample of at most ``max_sites / 2`` sites is replaced by its supercell
    doubled along a random lattice vector (Niggli-reduced; its site condition is the doubled count): real
    geometry in larger cells, where the model's own geometry is weakest. The site-count prior that samplers
    draw from stays the stored records' histogram."""
    num_workers: int = 0
    """DataLoader worker processes per training process."""
    device_batches: bool = False
    """Build and augment batches on the training device from the site arrays (for GPUs: no host-side
    re-encoding per item) instead of the per-item DataLoader path."""
    log_every: int = 10
    """Steps between rows of metrics.jsonl."""
    checkpoint_every: int = 500
    """Steps between checkpoints (``checkpoints/step-N/`` folders with a completion marker)."""
    keep_checkpoints: int = 2
    """Complete checkpoint folders kept (at least two are always kept)."""
    max_nonfinite_steps: int = 10
    """Consecutive NaN/inf losses tolerated (each step is skipped) before training stops with an error."""
    precision: str = "auto"
    """``auto`` (bf16 autocast on GPU, fp32 on CPU), ``bf16`` or ``fp32``."""
    compile: bool = False
    """Wrap the network in ``torch.compile``."""
    threads_per_process: int = 0
    """torch intra-op threads per process; 0 = cores available to this process / local processes."""
    site_drop_prob: float = 0.2
    """With ``model.site_condition``: probability that a sample's number of sites is withheld on its own
    (besides ``diffusion.cond_drop_prob``, which withholds every condition), so that the model also
    learns the count-free case that reconstruction uses."""
    site_lr_scale: float = 1.0
    """Learning-rate multiplier of the site condition's own weights (``cond_embed.site*``): a fine-tune that
    adds the condition to a trained network starts them at zero and needs them to catch up."""

    def augmentation(self) -> Augmentation:
        """The five switches that shape a training sample (``augment``, ``origin``, ``site_order``, ``invert_prob``,
        ``supercell_prob``) as the one object both batch paths take."""
        return Augmentation(self.augment, self.origin, self.site_order, self.invert_prob, self.supercell_prob)

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _require(self.batch_size >= 1, "batch_size", "must be >= 1")
        _require(self.lr > 0, "lr", "must be positive")
        _require(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _require(all(0 <= b < 1 for b in self.betas), "betas", "must be in [0, 1)")
        _require(self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        _require(self.lr_decay in ("none", "cosine"), "lr_decay", f"must be none or cosine, got {self.lr_decay!r}")
        _require(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        self.augmentation()  # checks origin, site_order, invert_prob and supercell_prob
        _require(self.max_steps >= 1, "max_steps", "must be >= 1")
        _require(self.max_minutes >= 0, "max_minutes", "must be >= 0")
        _require(self.grad_clip >= 0, "grad_clip", "must be >= 0")
        _require(0 <= self.ema_decay < 1, "ema_decay", "must be in [0, 1)")
        _require(self.num_workers >= 0, "num_workers", "must be >= 0")
        _require(self.log_every >= 1, "log_every", "must be >= 1")
        _require(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        _require(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        _require(self.max_nonfinite_steps >= 1, "max_nonfinite_steps", "must be >= 1")
        _require(self.precision in ("auto", "bf16", "fp32"), "precision", "must be auto, bf16 or fp32")
        _require(self.threads_per_process >= 0, "threads_per_process", "must be >= 0")
        _require(0 <= self.site_drop_prob <= 1, "site_drop_prob", "must be in [0, 1]")
        _require(self.site_lr_scale > 0, "site_lr_scale", "must be positive")


@dataclass
class RunConfig:
    """Everything a training run needs besides paths: model, diffusion and training settings."""

    model: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    """Shape of the transformer denoiser (used when ``denoiser = "dit"``)."""
    denoiser: str = "unet"
    """Which network: ``unet`` (the paper's, shaped by ``model``) or ``dit`` (shaped by ``dit``).
    ``model.num_magnetic_classes`` applies to both."""
    preset: str = "paper"
    """Name of the preset this configuration started from (informational)."""

    def __post_init__(self) -> None:
        _require(self.denoiser in ("unet", "dit"), "denoiser", f"must be unet or dit, got {self.denoiser!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return plain nested dicts/lists (TOML-, JSON- and ``weights_only``-safe)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Build a validated config from nested dicts; unknown keys raise ``ValueError``."""
        data, retired = without_retired_fields(data)
        for name in retired:
            log.warning("config field %s is no longer used (sampling is set by the --sampler, --steps and --guidance "
                        "flags of generate, reconstruct and evaluate); ignored", name)
        sections = {"model": UNetConfig, "diffusion": DiffusionConfig, "train": TrainConfig, "dit": DiTConfig}
        kwargs: dict[str, Any] = {}
        for name, klass in sections.items():
            kwargs[name] = _build(klass, data.pop(name, {}), name)
        for name in ("preset", "denoiser"):
            if name in data:
                kwargs[name] = str(data.pop(name))
        if data:
            raise ValueError(f"unknown config section(s): {sorted(data)}")
        return cls(**kwargs)

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        """Return a copy with nested ``overrides`` (same layout as the TOML file) applied."""
        merged = self.to_dict()
        for section, values in overrides.items():
            if section in ("preset", "denoiser"):
                merged[section] = values
                continue
            if section not in merged or not isinstance(values, dict):
                raise ValueError(f"unknown config section: {section!r}")
            merged[section].update(values)
        return RunConfig.from_dict(merged)


def without_retired_fields(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A config dict (the TOML layout) without its :data:`RETIRED_FIELDS`, and the names (``section.field``) dropped."""
    out, dropped = dict(data), []
    for section, names in RETIRED_FIELDS.items():
        values = out.get(section)
        if isinstance(values, dict):
            dropped += [f"{section}.{key}" for key in sorted(values) if key in names]
            out[section] = {k: v for k, v in values.items() if k not in names}
    return out, dropped


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


def dit_cpu_preset() -> RunConfig:
    """A ~5.6M-parameter transformer denoiser (width 192, 8 blocks, 4 point rows per token) for CPU or GPU.

    Chosen over the ``cpu`` U-Net by the ablation in the README: its dense matrix products run in
    bf16 autocast (AVX512-BF16 / AMX on CPU, tensor cores on GPU) and every point row attends to
    every other, which is what placing atoms at bonding distances from each other needs. v-prediction
    with min-SNR weighting, cosine learning-rate decay, canonical within-species site order.
    """
    diffusion = DiffusionConfig(prediction="v", loss_weighting="min_snr")
    train = TrainConfig(batch_size=128, lr=4e-4, warmup_steps=200, max_steps=20_000, lr_decay="cosine",
                        ema_decay=0.999, checkpoint_every=250, log_every=10, precision="bf16", site_order="canonical")
    return RunConfig(diffusion=diffusion, train=train, dit=DiTConfig(width=192, depth=8, heads=4, patch_points=4,
                                                                     element_emb_dim=32),
                     denoiser="dit", preset="dit-cpu")


def dit_gpu_preset() -> RunConfig:
    """The ``dit-cpu`` design sized for about 10 minutes of one H100: width 256, 8 blocks (~9.9M parameters,
    19.8 MB as a float16 export), batch 1024 built and augmented on the GPU, bf16 autocast, 10-minute budget."""
    config = dit_cpu_preset()
    config.dit = DiTConfig(width=256, depth=8, heads=4, patch_points=4, element_emb_dim=32)
    config.train = TrainConfig(batch_size=1024, lr=5e-4, warmup_steps=300, max_steps=8000, max_minutes=10.0,
                               lr_decay="cosine", ema_decay=0.9995, checkpoint_every=500, log_every=50,
                               precision="bf16", site_order="canonical", device_batches=True)
    config.preset = "dit-gpu"
    return config


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


PRESETS: dict[str, Callable[[], RunConfig]] = {"paper": paper_preset, "cpu": cpu_preset, "dit-cpu": dit_cpu_preset,
                                               "dit-gpu": dit_gpu_preset, "tiny": tiny_preset}


def get_preset(name: str) -> RunConfig:
    """Return the named preset (``paper``, ``cpu``, ``dit-cpu``, ``dit-gpu`` or ``tiny``)."""
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
