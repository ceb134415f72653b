"""How a stored record becomes a training tensor: its frame (origin, site order) and its random augmentations.

One settings object for both implementations: the per-item numpy path
(:class:`pccd_hpc.data.dataset.ShardDataset`) and the on-device torch path
(:class:`pccd_hpc.train.device_batches.DeviceBatches`), checked once here. Tests hold the two paths
to the same set of admissible tensors (``tests/train/test_augmentation_paths.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pccd_hpc.stage_config import require

ORIGINS = ("random", "anchor")
SITE_ORDERS = ("random", "canonical")


@dataclass(frozen=True)
class Augmentation:
    """The five switches of :class:`pccd_hpc.config.TrainConfig` that shape a training sample (same names)."""

    augment: bool = False
    """Random transformations of every sample: an origin shift, the site order within each species, and the
    inversion and supercell below. False: the record as stored (in the frame below, without random choices)."""
    origin: str = "random"
    """``random`` (a uniform shift) or ``anchor`` (an atom of the first species at the cell centre)."""
    site_order: str = "random"
    """Order of the atoms within a species: ``random`` (a fresh permutation) or ``canonical`` (sorted by the
    shifted fractional coordinates)."""
    invert_prob: float = 0.0
    """Probability of an inversion through the origin (fractional coordinates negated) of an augmented sample."""
    supercell_prob: float = 0.0
    """Probability that an augmented sample of at most ``max_sites / 2`` sites becomes its cell doubled along a
    random lattice vector."""

    def __post_init__(self) -> None:
        require(self.site_order in SITE_ORDERS, "site_order", f"must be random or canonical, got {self.site_order!r}")
        require(self.origin in ORIGINS, "origin", f"must be random or anchor, got {self.origin!r}")
        for name in ("invert_prob", "supercell_prob"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, name, f"must be in [0, 1], got {value!r}")
        object.__setattr__(self, "invert_prob", float(self.invert_prob))
        object.__setattr__(self, "supercell_prob", float(self.supercell_prob))

    @property
    def stored_frame(self) -> bool:
        """Items are the stored tensors themselves (no augmentation, random origin and order: the file's frame)."""
        return not self.augment and self.site_order == "random" and self.origin == "random"

    def frame_only(self) -> "Augmentation":
        """The frame a model trained with these settings is compared in, without random transformations: its
        origin and site order when it trained augmented, else the records as stored (reconstruction reads so)."""
        return Augmentation(False, self.origin, self.site_order) if self.augment else NO_AUGMENTATION


NO_AUGMENTATION = Augmentation()
"""Records as stored."""
