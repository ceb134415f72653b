"""The generation plan: what to sample, split into tasks, fixed once in ``DIR/plan.json``.

Every task (a local loop iteration, a SLURM array task or a submitit job) reads the same plan,
so re-running or requeueing a task reproduces exactly its share of the N samples.
Sample ``i`` of ``n`` belongs to task ``i // chunk`` and asks for system ``i % n_systems``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pccd_hpc.io_utils import atomic_write_json, read_json, settings_sha256
from pccd_hpc.model.samplers import DDIM_STEPS, GUIDANCE_SCALE
from pccd_hpc.stage_config import require

PLAN_NAME = "plan.json"
SAMPLERS = ("ddim", "ddpm")

MAX_SAMPLES_PER_RUN = 1_000_000
"""Most samples one generate run may ask for (``--n``): the merge step keeps about 200 bytes of
per-sample summary each (about 0.2 GB at the limit); larger studies are several runs (``--out``)."""
MAX_SAMPLES_PER_TASK = 50_000
"""Most samples one task may hold (``--n`` / ``--array-size``): a task decodes and writes its whole
shard at once, about 20 kB of memory per sample (tensors, structures, the shard being built), so
about 1 GB at the limit. Local runs split larger ``--n`` into tasks of at most this many."""
MAX_BATCH_SIZE = 4096
"""Most samples sampled together (``--batch-size``): the network's activations grow with it."""
MAX_SEED = 2**63 - 1
"""Seeds are stored as signed 64-bit integers (HDF5 attributes); ``--seed`` must be in [0, MAX_SEED]."""
BYTES_PER_TASK_SAMPLE = 20_000
"""Memory allowed per sample in a task's decode-and-write step (see ``MAX_SAMPLES_PER_TASK``): measured with the
bundled model (tracemalloc, 512 and 1,536 samples) at 7.3 kB per sample on top of about 90 MB, so 20 kB leaves
room for what tracemalloc does not see (HDF5 and gzip buffers)."""


def tasks_needed(n: int, max_per_task: int = MAX_SAMPLES_PER_TASK) -> int:
    """The fewest tasks that keep every task within ``max_per_task`` samples."""
    return max(1, -(-n // max_per_task))


def generate_bounds_problem(n: int, n_tasks: int, batch_size: int, seed: int,
                            max_per_run: int = MAX_SAMPLES_PER_RUN, max_per_task: int = MAX_SAMPLES_PER_TASK) -> str | None:
    """Why these generate settings cannot run (in the command's flags), or None; checked before anything is written."""
    if n < 1:
        return f"--n must be >= 1, got {n}"
    if n > max_per_run:
        return (f"--n {n} is above the limit of {max_per_run} samples per run (the merge step would need about "
                f"{n * 200 / 1e9:.1f} GB); split the study into several runs with their own --out")
    if not 1 <= n_tasks <= n:
        return f"--array-size must be in [1, --n], got {n_tasks}"
    per_task = -(-n // n_tasks)
    if per_task > max_per_task:
        return (f"{per_task} samples per task is above the limit of {max_per_task} (about "
                f"{per_task * BYTES_PER_TASK_SAMPLE / 1e9:.1f} GB of memory per task); use --array-size "
                f">= {tasks_needed(n, max_per_task)}")
    if batch_size < 1:
        return f"--batch-size must be >= 1, got {batch_size}"
    if batch_size > MAX_BATCH_SIZE:
        return f"--batch-size must be <= {MAX_BATCH_SIZE} (the network's activations grow with it), got {batch_size}"
    if not 0 <= seed <= MAX_SEED:
        return f"--seed must be in [0, 2**63 - 1], got {seed}"
    return None


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
    steps: int = DDIM_STEPS
    """DDIM steps (ignored by ddpm)."""
    guidance: float = GUIDANCE_SCALE
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
        require(1 <= self.n <= MAX_SAMPLES_PER_RUN, "n", f"must be in [1, {MAX_SAMPLES_PER_RUN}], got {self.n}")
        require(0 <= self.seed <= MAX_SEED, "seed", f"must be in [0, 2**63 - 1], got {self.seed}")
        require(bool(self.systems) and all(len(s) == 3 for s in self.systems), "systems",
                "must be a non-empty list of 3 element slots")
        require(self.sampler in SAMPLERS, "sampler", f"must be one of {SAMPLERS}, got {self.sampler!r}")
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size", f"must be in [1, {MAX_BATCH_SIZE}], got {self.batch_size}")
        require(1 <= self.n_tasks <= self.n, "n_tasks", f"must be in [1, n], got {self.n_tasks}")
        require(self.chunk <= MAX_SAMPLES_PER_TASK, "n_tasks",
                f"{self.chunk} samples per task is above the limit of {MAX_SAMPLES_PER_TASK}; use >= {tasks_needed(self.n)} tasks")
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

    def settings_sha256(self) -> str:
        """Hash of every setting (each task's shard carries it; a shard with another hash belongs to another plan)."""
        return settings_sha256(self.to_dict())


def write_plan(out_dir: Path, plan: GeneratePlan, replace: bool = False) -> GeneratePlan:
    """Write ``plan.json`` and return the plan as stored, refusing to overwrite a different plan (that would mix
    two runs) unless ``replace`` (``--force-redo``: the caller removes the other plan's tasks)."""
    path = out_dir / PLAN_NAME
    if path.exists() and not replace:
        existing = read_plan(out_dir)
        if existing.to_dict() != plan.to_dict():
            changed = sorted(k for k, v in plan.to_dict().items() if existing.to_dict().get(k) != v)
            raise ValueError(f"{path} holds a different plan (changed: {', '.join(changed)}); use a new --out folder, "
                             f"or --force-redo to replace it and its tasks")
        return existing
    atomic_write_json(path, plan.to_dict())
    return GeneratePlan(**json.loads(json.dumps(plan.to_dict())))  # exactly what a task will read back


def read_plan(out_dir: str | Path) -> GeneratePlan:
    """Load ``plan.json`` from a generation folder."""
    path = Path(out_dir) / PLAN_NAME
    if not path.exists():
        raise FileNotFoundError(f"{out_dir} has no {PLAN_NAME}: run `generate` to create it")
    return GeneratePlan(**read_json(path, "generation plan"))
