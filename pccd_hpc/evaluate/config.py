"""What one evaluation reads and writes (:class:`EvaluatePaths`) and how it measures (:class:`EvaluateConfig`).

The evaluate stage is entered as ``run_evaluate(config, paths)``, as validate is. The config is a frozen
dataclass validated on construction and loadable from TOML (:func:`pccd_hpc.stage_config.load_config_toml`);
TOML has no null, so "no push-apart" (``push_apart_factor = None``, ``--no-push-apart``) is for the
command line and Python callers only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE


@dataclass(frozen=True)
class EvaluatePaths:
    """Where an evaluation reads and writes (checked to exist by the caller)."""

    checkpoint: Path
    """Checkpoint to evaluate (a run folder, a ``step-N/`` folder or an exported single file)."""
    data: Path
    """Held-out encoded shard folder: de novo systems, coverage reference, reconstruction items."""
    out: Path
    """Evaluation folder EDIR (evaluate.json, evaluate.md, one JSON per part)."""
    train_data: Path | None = None
    """Training shard folder for the paper's protocol (t = T on training items); None skips that part."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready paths (as strings)."""
        return {k: (None if v is None else str(v)) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything that decides an evaluation's figures, besides the checkpoint and data it is given."""

    n_samples: int = 1000
    """De novo samples, over the held-out structures' element slots cycled in a seeded order."""
    n_reconstruct: int = 1280
    """Held-out records reconstructed at t = 300 and at t = T (fewer when the folder holds fewer)."""
    n_train_reconstruct: int = 256
    """Training records reconstructed at t = T (only with ``train_data``)."""
    steps: int = DDIM_STEPS
    """Sampler steps (DDIM; ignored by DDPM) for de novo samples and reconstruction."""
    guidance: float = GUIDANCE_SCALE
    """Classifier-free guidance scale."""
    sampler: str = "ddim"
    """De novo sampler: ``ddim`` or ``ddpm`` (reconstruction is always deterministic DDIM)."""
    seed: int = 0
    """Seed of the system order, the sampling noise and the reconstruction subsets."""
    batch_size: int = 128
    """Samples per model call (changes no figure beyond floating-point noise, but is recorded)."""
    partial_t: int = 300
    """Noise step of the partial-noise reconstruction (the paper's Fig. 1 uses 300)."""
    skip_coverage: bool = False
    """Skip the fingerprint-based COV-R / COV-P (the slowest part)."""
    push_apart_factor: float | None = PUSH_APART_FACTOR
    """Also score the de novo samples after the generate stage's push-apart to this separation
    (:mod:`pccd_hpc.data.separation`, its default); None scores them only as sampled."""
    csp_targets: int = 0
    """Held-out structures for crystal structure prediction (composition and sites given); 0 skips the part."""
    csp_k: int = 20
    """CSP candidates per target (match rate at k = 1 and at this k)."""
    csp_ranked: int = 0
    """Of the CSP targets, how many also get every candidate relaxed (CHGNet) and ranked by energy."""
    csp_relax_steps: int = 100
    """Most optimizer steps per relaxation of the ranked CSP targets."""
    precision: str = "auto"
    """Network arithmetic: ``auto`` (bf16 autocast where the model was trained so), ``bf16`` or ``fp32``."""

    def __post_init__(self) -> None:
        for name in ("n_samples", "n_reconstruct", "n_train_reconstruct", "steps", "batch_size", "partial_t"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("csp_targets", "csp_ranked"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.csp_k < 1 or self.csp_relax_steps < 1:
            raise ValueError(f"csp_k and csp_relax_steps must be >= 1, got {self.csp_k}, {self.csp_relax_steps}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.push_apart_factor is not None and not 0 < self.push_apart_factor <= 1.5:
            raise ValueError(f"push_apart_factor must be None or in (0, 1.5], got {self.push_apart_factor}")
        if not self.guidance >= 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)
