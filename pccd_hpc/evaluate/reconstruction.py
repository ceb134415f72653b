"""The reconstruction protocols of an evaluation, run with the ``reconstruct`` stage's own functions.

Three protocols (paper Fig. 1 / Table 1; :mod:`pccd_hpc.sampling.reconstruction` explains them):
held-out items at t = 300 (partial noise), held-out items at t = T (pure noise, the item's
conditions) and training items at t = T (the paper's own setting; only with training shards).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pccd_hpc.data.codec import CodecConfig
from pccd_hpc.sampling.reconstruction import ReconstructConfig, run_reconstruct
from pccd_hpc.sampling.checkpoint_sampler import LoadedModel


@dataclass(frozen=True)
class Protocol:
    """One reconstruction run: which data, how many items, from which noise step."""

    name: str
    """Part name, e.g. ``reconstruct-heldout-t300``."""
    label: str
    """``held-out`` or ``training`` (written into the results)."""
    data: Path
    n: int
    t: int


def protocols(heldout: Path, train: Path | None, n_heldout: int, n_train: int, partial_t: int,
              timesteps: int) -> list[Protocol]:
    """The protocols an evaluation runs, in order (t = T is the last timestep index, T - 1)."""
    t_max = timesteps - 1
    runs = [Protocol(f"reconstruct-heldout-t{min(partial_t, t_max)}", "held-out", heldout, n_heldout, min(partial_t, t_max)),
            Protocol("reconstruct-heldout-tT", "held-out", heldout, n_heldout, t_max)]
    if train is not None:
        runs.append(Protocol("reconstruct-train-tT", "training", train, n_train, t_max))
    return runs


def run_protocol(loaded: LoadedModel, protocol: Protocol, out_dir: Path, steps: int, guidance: float, seed: int,
                 batch_size: int, codec: CodecConfig, push_apart_factor: float | None = None) -> dict:
    """Run one protocol into ``out_dir/<name>/`` (reconstruct.json, reconstruct.png); return its metrics."""
    config = ReconstructConfig(n=protocol.n, t=protocol.t, steps=steps, guidance=guidance, batch_size=batch_size,
                               seed=seed, push_apart_factor=push_apart_factor)
    metrics = run_reconstruct(loaded, protocol.data, out_dir / protocol.name, config, protocol.label, codec)
    metrics["figure"] = f"{protocol.name}/reconstruct.png"
    return metrics
