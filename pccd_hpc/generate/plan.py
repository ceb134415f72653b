"""The generation plan: what to sample, split into tasks, fixed once in ``DIR/plan.json``.

Every task (a local loop iteration, a SLURM array task or a submitit job) reads the same plan,
so re-running or requeueing a task reproduces exactly its share of the N samples.
Sample ``i`` of ``n`` belongs to task ``i // chunk`` and asks for system ``i % n_systems``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pccd_hpc.io_utils import atomic_write_json, read_json
from pccd_hpc.stage_config import require

PLAN_NAME = "plan.json"
SAMPLERS = ("ddim", "ddpm")


@dataclass
class GeneratePlan:
    """Settings of one generation run (written to ``plan.json``)."""

    n: int
    """Number of samples requested (exactly this many are generated)."""
    systems: list[tuple[int, ...]]
    """Element slots (atomic numbers, canonical order) of each chemical system, used round-robin."""
    checkpoint: str
    """Checkpoint file the samples come from."""
    checkpoint_sha256: str
    """Its hash, recorded as provenance and checked by every task."""
    sampler: str = "ddim"
    """``ddim`` (few steps) or ``ddpm`` (ancestral, all T steps)."""
    steps: int = 50
    """DDIM steps (ignored by ddpm)."""
    guidance: float = 3.0
    """Classifier-free guidance scale (1 = conditional only)."""
    band_gap_class: int | None = None
    """Band-gap condition (0 metal, 1 < 1.5 eV, 2 >= 1.5 eV) or None for unconditioned."""
    batch_size: int = 256
    """Samples per batch (the unit of work a killed task may lose)."""
    seed: int = 0
    """Base seed; batch ``b`` of task ``k`` uses seed (seed, k, b)."""
    n_tasks: int = 1
    """Number of tasks (SLURM array size)."""
    codec: dict = field(default_factory=dict)
    """Codec settings of the checkpoint (used to decode)."""
    push_apart_factor: float | None = None
    """After decoding, push atoms apart until every d_ij >= this x (r_i + r_j) (AIRSS-style minimum
    separation, :mod:`pccd_hpc.data.separation`); None keeps the structures exactly as sampled.
    (The CLI default is 0.8; None here keeps plans written before this field as they were.)"""
    n_sites: int | None = None
    """Number of sites asked of a model conditioned on it (``model.site_condition``); None draws each
    sample's count from the training set's distribution for its number of elements."""

    def __post_init__(self) -> None:
        self.systems = [tuple(int(z) for z in s) for s in self.systems]
        require(self.n >= 1, "n", f"must be >= 1, got {self.n}")
        require(bool(self.systems) and all(len(s) == 3 for s in self.systems), "systems",
                "must be a non-empty list of 3 element slots")
        require(self.sampler in SAMPLERS, "sampler", f"must be one of {SAMPLERS}, got {self.sampler!r}")
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(1 <= self.n_tasks <= self.n, "n_tasks", f"must be in [1, n], got {self.n_tasks}")
        require(self.band_gap_class in (None, 0, 1, 2), "band_gap_class",
                f"must be 0, 1, 2 or None, got {self.band_gap_class}")
        require(self.n_sites is None or self.n_sites >= 1, "n_sites", f"must be None or >= 1, got {self.n_sites}")
        require(self.push_apart_factor is None or 0 < self.push_apart_factor <= 1.5, "push_apart_factor",
                f"must be None or in (0, 1.5], got {self.push_apart_factor}")

    @property
    def chunk(self) -> int:
        """Samples per task (the last task may have fewer)."""
        return -(-self.n // self.n_tasks)

    def task_range(self, task: int) -> range:
        """Sample indices of ``task``."""
        if not 0 <= task < self.n_tasks:
            raise ValueError(f"task {task} out of range [0, {self.n_tasks})")
        return range(task * self.chunk, min(self.n, (task + 1) * self.chunk))

    def batches(self, task: int) -> list[range]:
        """The task's sample indices cut into batches."""
        indices = self.task_range(task)
        return [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]

    def system_of(self, sample: int) -> tuple[int, ...]:
        """Element slots requested for sample ``sample``."""
        return self.systems[sample % len(self.systems)]

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        data = asdict(self)
        data["systems"] = [list(s) for s in self.systems]
        return data


def write_plan(out_dir: Path, plan: GeneratePlan) -> GeneratePlan:
    """Write ``plan.json`` and return the plan as stored, refusing to overwrite a different plan (that would mix two runs)."""
    path = out_dir / PLAN_NAME
    if path.exists():
        existing = read_plan(out_dir)
        if existing.to_dict() != plan.to_dict():
            changed = sorted(k for k, v in plan.to_dict().items() if existing.to_dict().get(k) != v)
            raise ValueError(f"{path} holds a different plan (changed: {', '.join(changed)}); use a new --out folder")
        return existing
    atomic_write_json(path, plan.to_dict())
    return GeneratePlan(**json.loads(json.dumps(plan.to_dict())))  # exactly what a task will read back


def read_plan(out_dir: str | Path) -> GeneratePlan:
    """Load ``plan.json`` from a generation folder."""
    path = Path(out_dir) / PLAN_NAME
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} has no {PLAN_NAME}: run `generate` to create it")
    return GeneratePlan(**read_json(path, "generation plan"))
