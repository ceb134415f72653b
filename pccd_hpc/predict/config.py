"""Settings of a ``predict`` run (crystal structure prediction from formulas), validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pccd_hpc.cluster.slurm import ARRAY_TASK_FLAGS
from pccd_hpc.stage_config import require
from pccd_hpc.data.separation import PUSH_APART_FACTOR
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE

MAX_CANDIDATES = 1000
"""Most candidates per composition (--k)."""


@dataclass
class PredictConfig:
    """What a prediction run makes; everything here is part of the run's identity (``predict.json``)."""

    compositions: list[str] = field(default_factory=list)
    """Formulas as the user wrote them (``Sr2TiO4``; ``Sr4Ti2O8`` means that cell as written)."""
    k: int = 20
    """Candidates per composition (spread over the allowed numbers of formula units)."""
    formula_units: int | None = None
    """Z for every composition (None: as written when the formula has a common factor, else every Z that fits)."""
    steps: int = DDIM_STEPS
    """DDIM steps."""
    guidance: float = GUIDANCE_SCALE
    """Classifier-free guidance scale."""
    push_apart_factor: float | None = PUSH_APART_FACTOR
    """After decoding, push atoms apart to this x the sum of covalent radii (None: as sampled)."""
    seed: int = 0
    """Base seed; each composition's candidates are seeded by (seed, its formula), whatever else is in the run."""
    relax: bool = False
    """Relax every candidate and rank them by energy per atom."""
    backend: str = "chgnet"
    """Relaxation backend (the validation backends)."""
    relax_steps: int = 500
    """Most optimizer steps of one relaxation."""
    n_tasks: int = 1
    """Array tasks the compositions are split over."""
    checkpoint: str = ""
    """The checkpoint file or step folder (resolved)."""
    checkpoint_sha256: str = ""
    """Its sha256 (a changed checkpoint is refused on resume)."""
    codec: dict[str, Any] = field(default_factory=dict)
    """The checkpoint's codec settings (its limits decide which formulas fit; blocks are read with it)."""

    def __post_init__(self) -> None:
        require(1 <= self.k <= MAX_CANDIDATES, "k", f"must be in [1, {MAX_CANDIDATES}], got {self.k}")
        require(self.formula_units is None or self.formula_units >= 1, "formula_units",
                f"must be >= 1, got {self.formula_units}")
        require(1 <= self.steps <= 1000, "steps", f"must be in [1, 1000], got {self.steps}")
        require(self.guidance >= 0, "guidance", f"must be >= 0, got {self.guidance}")
        require(self.push_apart_factor is None or 0 < self.push_apart_factor <= 1.5, "push_apart_factor",
                f"must be in (0, 1.5], got {self.push_apart_factor}")
        require(0 <= self.seed < 2**63, "seed", f"must be in [0, 2^63 - 1], got {self.seed}")
        require(self.relax_steps >= 1, "relax_steps", f"must be >= 1, got {self.relax_steps}")
        require(self.n_tasks >= 1, "n_tasks", f"must be >= 1, got {self.n_tasks}")
        require(len(self.compositions) >= 1, "compositions", "no composition given")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    def sampling_settings(self) -> dict[str, Any]:
        """What decides a composition's candidates (its result is redone when these change)."""
        keys = ("k", "formula_units", "steps", "guidance", "push_apart_factor", "seed", "checkpoint_sha256")
        return {key: getattr(self, key) for key in keys}

    def ranking_settings(self) -> dict[str, Any] | None:
        """What decides a composition's ranking (None without --relax)."""
        return {"backend": self.backend, "relax_steps": self.relax_steps} if self.relax else None


PREDICT_FLAGS = {"k": "--k", "formula_units": "--formula-units", "steps": "--steps", "guidance": "--guidance",
                 "push_apart_factor": "--push-apart-factor", "seed": "--seed", "relax_steps": "--relax-steps",
                 "n_tasks": "--array-size", "compositions": "--composition", "backend": "--backend",
                 **ARRAY_TASK_FLAGS}
"""Config fields (and SLURM resources) and the predict flag that sets each (for error messages)."""
