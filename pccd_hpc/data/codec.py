"""The PCCD point-cloud codec: a crystal (<= 16 sites, <= 3 elements) <-> a float32 (3, 128, 3) tensor.

Layout of the tensor ``x`` (channel, point, xyz):

* ``x[0]``: fractional coordinates in [0, 1). Atom ``i`` of ``n`` occupies ``128 // n`` points,
  and the ``128 % n`` leftover points go one each to the first atoms (PCCD piled them all on the
  last atom, which biased that atom's weight in clustering).
* ``x[1]``: one-hot over the three element slots. The slots are the structure's elements in one
  canonical order (increasing Pauling electronegativity, then atomic number: pymatgen's formula
  order), padded by repeating the last element, e.g. ``(Si, Si, Si)``, ``(Mg, O, O)``. The same
  order is used for the one-hot and for the condition (the reference mixed POSCAR and
  alphabetical orders).
* ``x[2]``: points 0-63 hold (alpha, beta, gamma) / pi, points 64-127 the normalised lengths
  (a, b, c): ``a / L`` in the paper's ``linear`` mode (L = 15 A, a hard cap), or
  ``ln(a) / ln(L)`` in the default ``log`` mode, which has no cap.

Decoding (``decode_method``) either clusters the points of each species on the torus (``dbscan``,
PCCD's way: periodic Cartesian distances in Angstrom, DBSCAN whose noise label is never counted as
an atom, so an atom at x ~ 0 and x ~ 1 is one atom) or reads the codec's own layout (``blocks``): the
points of atom i of n always occupy the i-th block of ``point_counts(n)`` rows, so the atom count is
the smallest n whose blocks each sit tightly around their periodic mean, and each block's species is
its points' majority (DBSCAN when no n fits). Atom positions are periodic means. Nothing is rounded.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pymatgen.core import Element, Lattice, Structure

N_CHANNELS = 3
N_POINTS = 128
N_ELEMENT_SLOTS = 3
N_ANGLE_POINTS = N_POINTS // 2
DECODE_METHODS = ("dbscan", "blocks")

# Lattice offsets of the 27 neighbouring cells, used for minimum-image distances.
IMAGES = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)


class RecordError(ValueError):
    """A record that cannot be encoded or decoded; ``reason`` is a short machine-readable key."""

    def __init__(self, reason: str, message: str, record_id: str | None = None) -> None:
        self.reason = reason
        self.record_id = record_id
        prefix = f"record {record_id}: " if record_id else ""
        super().__init__(f"{prefix}{reason}: {message}")


@dataclass(frozen=True)
class CodecConfig:
    """Settings of the point-cloud codec; the defaults are this package's, ``paper()`` is PCCD's."""

    n_points: int = N_POINTS
    """Points per channel (PCCD: 128)."""
    max_sites: int = 16
    """Largest number of sites a structure may have (PCCD: 16)."""
    max_elements: int = N_ELEMENT_SLOTS
    """Largest number of distinct elements (PCCD: 3)."""
    length_norm: str = "log"
    """``linear``: a / L, lengths above L rejected (PCCD); ``log``: ln(a) / ln(L), no cap."""
    length_scale_ang: float = 15.0
    """L in Angstrom (PCCD: 15)."""
    niggli_reduce: bool = True
    """Niggli-reduce cells before encoding (shorter, canonical lattice vectors)."""
    cluster_eps_ang: float = 0.5
    """DBSCAN neighbourhood radius in Angstrom (periodic Cartesian distance)."""
    cluster_min_points: int = 2
    """DBSCAN ``min_samples``: points needed to form an atom; isolated points are noise."""
    min_distance_ang: float = 0.5
    """Decoded structures with two atoms closer than this are rejected (overlapping atoms)."""
    min_volume_ang3: float = 0.1
    """Decoded lattices with a smaller volume are rejected (degenerate lattice)."""
    decode_method: str = "dbscan"
    """``dbscan``: cluster each species' points (PCCD); ``blocks``: the codec's row blocks, DBSCAN as fallback."""
    block_rms_ang: float = 0.3
    """``blocks``: largest RMS distance (Angstrom) of a block's points from their atom for an atom count to fit."""

    def __post_init__(self) -> None:
        if self.n_points < 2 * self.max_sites or self.n_points % 2:
            raise ValueError(f"n_points must be even and >= 2 * max_sites, got {self.n_points}")
        if not 1 <= self.max_sites <= self.n_points:
            raise ValueError(f"max_sites must be in [1, n_points], got {self.max_sites}")
        if self.max_elements != N_ELEMENT_SLOTS:
            raise ValueError(f"max_elements must be {N_ELEMENT_SLOTS} (the tensor has 3 columns)")
        if self.length_norm not in ("linear", "log"):
            raise ValueError(f"length_norm must be 'linear' or 'log', got {self.length_norm!r}")
        if not self.length_scale_ang > 1.0:
            raise ValueError(f"length_scale_ang must be > 1 Angstrom, got {self.length_scale_ang}")
        if not self.cluster_eps_ang > 0:
            raise ValueError(f"cluster_eps_ang must be > 0, got {self.cluster_eps_ang}")
        if self.cluster_min_points < 1:
            raise ValueError(f"cluster_min_points must be >= 1, got {self.cluster_min_points}")
        if self.min_distance_ang < 0 or self.min_volume_ang3 < 0:
            raise ValueError("min_distance_ang and min_volume_ang3 must be >= 0")
        if self.decode_method not in DECODE_METHODS:
            raise ValueError(f"decode_method must be one of {DECODE_METHODS}, got {self.decode_method!r}")
        if not self.block_rms_ang > 0:
            raise ValueError(f"block_rms_ang must be > 0, got {self.block_rms_ang}")

    @classmethod
    def paper(cls) -> "CodecConfig":
        """PCCD's representation: lengths divided by 15 A (hard cap), no cell reduction."""
        return cls(length_norm="linear", length_scale_ang=15.0, niggli_reduce=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as a plain dict (stored in manifests and checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CodecConfig":
        """Build a config from ``to_dict`` output, refusing unknown keys."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown codec settings: {sorted(unknown)}")
        return cls(**data)

    def normalise_lengths(self, lengths_ang: np.ndarray) -> np.ndarray:
        """Map lattice lengths in Angstrom to channel-2 values."""
        if self.length_norm == "linear":
            return lengths_ang / self.length_scale_ang
        return np.log(lengths_ang) / math.log(self.length_scale_ang)

    def denormalise_lengths(self, values: np.ndarray) -> np.ndarray:
        """Inverse of ``normalise_lengths``: lattice lengths in Angstrom from channel-2 values (a numpy array, or a
        torch tensor for the model's losses, which stays on its device)."""
        if self.length_norm == "linear":
            return values * self.length_scale_ang
        exponent = values * math.log(self.length_scale_ang)
        return exponent.exp() if hasattr(exponent, "exp") else np.exp(exponent)


@dataclass
class EncodedStructure:
    """A structure in codec form. Arrays describe the (reduced) cell that was encoded."""

    tensor: np.ndarray
    """float32 (3, n_points, 3)."""
    element_z: np.ndarray
    """int64 (3,) atomic numbers of the element slots."""
    slot_index: np.ndarray
    """int64 (n,) element slot of each site, sites ordered by slot."""
    frac_coords: np.ndarray
    """float64 (n, 3) in [0, 1)."""
    lattice_params: np.ndarray
    """float64 (6,): a, b, c in Angstrom, alpha, beta, gamma in degrees."""

    @property
    def atomic_numbers(self) -> np.ndarray:
        """int64 (n,) atomic number of each site."""
        return self.element_z[self.slot_index]

    @property
    def structure(self) -> Structure:
        """The encoded structure (reduced cell in standard orientation, sites in slot order)."""
        return Structure(
            Lattice.from_parameters(*self.lattice_params), self.atomic_numbers.tolist(), self.frac_coords
        )

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return int(self.frac_coords.shape[0])


@functools.lru_cache(maxsize=None)
def _electronegativity_key(z: int) -> tuple[float, int]:
    with warnings.catch_warnings():  # noble gases have no Pauling value: sorted last
        warnings.simplefilter("ignore")
        x = Element.from_Z(z).X
    return (x if x is not None and math.isfinite(x) else math.inf, z)


def canonical_element_slots(atomic_numbers: list[int] | np.ndarray) -> np.ndarray:
    """Return the 3 element slots (atomic numbers) for the given elements, in canonical order.

    Order: increasing electronegativity, then atomic number; padded by repeating the last
    element. Raises ``RecordError`` for more than three distinct elements.
    """
    distinct = sorted({int(z) for z in atomic_numbers}, key=_electronegativity_key)
    if not distinct:
        raise RecordError("empty_structure", "no elements")
    if len(distinct) > N_ELEMENT_SLOTS:
        raise RecordError("too_many_elements", f"{len(distinct)} elements > {N_ELEMENT_SLOTS}")
    distinct += [distinct[-1]] * (N_ELEMENT_SLOTS - len(distinct))
    return np.asarray(distinct, dtype=np.int64)


def point_counts(n_sites: int, n_points: int = N_POINTS) -> np.ndarray:
    """Points per site: ``n_points // n`` each, the remainder spread one each over the first sites."""
    counts = np.full(n_sites, n_points // n_sites, dtype=np.int64)
    counts[: n_points % n_sites] += 1
    return counts


def encode_arrays(
    frac_coords: np.ndarray, slot_index: np.ndarray, lattice_params: np.ndarray, config: CodecConfig
) -> np.ndarray:
    """Encode site arrays into the (3, n_points, 3) float32 tensor.

    ``frac_coords`` (n, 3), ``slot_index`` (n,) ints in [0, 3), ``lattice_params`` (6,) as
    (a, b, c) in Angstrom and (alpha, beta, gamma) in degrees. Sites are written in the given order.
    """
    n = frac_coords.shape[0]
    counts = point_counts(n, config.n_points)
    rows = np.repeat(np.arange(n), counts)
    tensor = np.zeros((N_CHANNELS, config.n_points, 3), dtype=np.float32)
    tensor[0] = np.mod(frac_coords, 1.0)[rows]
    tensor[1, np.arange(config.n_points), slot_index[rows]] = 1.0
    half = config.n_points // 2
    tensor[2, :half] = np.radians(lattice_params[3:]) / math.pi
    tensor[2, half:] = config.normalise_lengths(np.asarray(lattice_params[:3], dtype=np.float64))
    return tensor


def check_encodable(structure: Structure, config: CodecConfig, record_id: str | None = None) -> None:
    """Raise ``RecordError`` when ``structure`` is outside the codec's limits."""
    if not structure.is_ordered:
        raise RecordError("partial_occupancy", "structure has partially occupied sites", record_id)
    n = len(structure)
    if n == 0:
        raise RecordError("empty_structure", "structure has no sites", record_id)
    if n > config.max_sites:
        raise RecordError("too_many_sites", f"{n} sites > {config.max_sites}", record_id)
    n_elements = len(structure.composition.elements)
    if n_elements > config.max_elements:
        raise RecordError("too_many_elements", f"{n_elements} elements > {config.max_elements}", record_id)


def encode_structure(structure: Structure, config: CodecConfig, record_id: str | None = None) -> EncodedStructure:
    """Encode a pymatgen ``Structure``; raise ``RecordError`` (with a reason) if it does not fit."""
    check_encodable(structure, config, record_id)
    if config.niggli_reduce:
        try:
            structure = structure.get_reduced_structure()
        except Exception as err:  # pymatgen raises plain ValueError/ArithmeticError on bad cells
            raise RecordError("bad_lattice", f"Niggli reduction failed ({err})", record_id) from err
    lattice = structure.lattice
    lengths = np.asarray(lattice.abc, dtype=np.float64)
    angles = np.asarray(lattice.angles, dtype=np.float64)
    if not (np.all(np.isfinite(lengths)) and np.all(lengths > 0) and lattice.volume > config.min_volume_ang3):
        raise RecordError("bad_lattice", f"degenerate lattice {lattice.abc} {lattice.angles}", record_id)
    if config.length_norm == "linear" and lengths.max() > config.length_scale_ang:
        raise RecordError(
            "lattice_out_of_range",
            f"lattice length {lengths.max():.2f} A > {config.length_scale_ang} A (linear normalisation cap)",
            record_id,
        )
    element_z = canonical_element_slots([site.specie.Z for site in structure])
    slot_of_z = {int(z): int(np.argmax(element_z == z)) for z in element_z}
    site_slots = np.array([slot_of_z[site.specie.Z] for site in structure], dtype=np.int64)
    order = np.argsort(site_slots, kind="stable")
    frac = np.mod(structure.frac_coords[order], 1.0)
    frac[frac >= 1.0] = 0.0  # np.mod can return 1.0 for tiny negative inputs
    slots = site_slots[order]
    params = np.concatenate([lengths, angles])
    tensor = encode_arrays(frac, slots, params, config)
    return EncodedStructure(tensor, element_z, slots, frac, params)


def periodic_distances(frac_a: np.ndarray, frac_b: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Minimum-image Cartesian distances (Angstrom) between (n, 3) and (m, 3) fractional coords.

    Exact for reduced cells: the nearest image is searched among the 27 neighbouring cells.
    """
    diff = frac_a[:, None, :] - frac_b[None, :, :]
    diff -= np.round(diff)
    cart = (diff[None, :, :, :] + IMAGES[:, None, None, :]) @ matrix
    return np.sqrt((cart**2).sum(-1)).min(axis=0)


def closest_pair_ang(frac_coords: np.ndarray, matrix: np.ndarray) -> float:
    """Distance (Angstrom) of the closest two distinct atoms, minimum image; ``inf`` for fewer than two."""
    if len(frac_coords) < 2:
        return math.inf
    pair = periodic_distances(frac_coords, frac_coords, matrix)
    np.fill_diagonal(pair, np.inf)
    return float(pair.min())


@dataclass
class DecodeResult:
    """What a tensor decodes to: a structure, or ``None`` with a rejection reason."""

    structure: Structure | None
    reason: str | None = None
    detail: str = ""
    n_atoms: int = 0

    @property
    def valid(self) -> bool:
        """True when the tensor decoded to an acceptable structure."""
        return self.structure is not None


def decode_lattice(tensor: np.ndarray, config: CodecConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return (lengths in A, angles in degrees) from channel 2 (medians over the copies)."""
    half = config.n_points // 2
    angles_deg = np.degrees(np.median(tensor[2, :half].astype(np.float64), axis=0) * math.pi)
    lengths = config.denormalise_lengths(np.median(tensor[2, half:].astype(np.float64), axis=0))
    return lengths, angles_deg


def decoded_lattice(tensor: np.ndarray, config: CodecConfig) -> Lattice | DecodeResult:
    """The lattice channel 2 of ``tensor`` (3, n_points, 3) describes, or the rejection (``non_finite`` or
    ``degenerate_lattice``) of a tensor that holds none."""
    tensor = np.asarray(tensor, dtype=np.float64)
    if not np.all(np.isfinite(tensor)):
        return DecodeResult(None, "non_finite", "tensor holds NaN or inf")
    lengths, angles = decode_lattice(tensor, config)
    lattice = _checked_lattice(lengths, angles, config)
    return DecodeResult(None, "degenerate_lattice", lattice) if isinstance(lattice, str) else lattice


def decode_tensor(
    tensor: np.ndarray,
    element_z: np.ndarray,
    config: CodecConfig,
    require_all_elements: bool = False,
) -> DecodeResult:
    """Decode a (3, n_points, 3) tensor into a ``Structure`` for the given element slots.

    Rejections (``reason``): ``non_finite``, ``degenerate_lattice``, ``no_atoms``,
    ``too_many_atoms``, ``overlapping_atoms``, ``wrong_element_count`` (only with
    ``require_all_elements``: a requested element has no atom).
    """
    tensor = np.asarray(tensor, dtype=np.float64)
    if tensor.shape != (N_CHANNELS, config.n_points, 3):
        raise ValueError(f"tensor must have shape (3, {config.n_points}, 3), got {tensor.shape}")
    element_z = np.asarray(element_z, dtype=np.int64)
    lattice = decoded_lattice(tensor, config)
    if isinstance(lattice, DecodeResult):
        return lattice
    matrix = lattice.matrix

    coords = np.mod(tensor[0], 1.0)
    slot_of_point = np.argmax(tensor[1], axis=1)
    atoms = _block_atoms(coords, slot_of_point, element_z, matrix, config) if config.decode_method == "blocks" else None
    if atoms is None:
        atoms = _cluster_atoms(coords, element_z[slot_of_point], matrix, config)
        if isinstance(atoms, DecodeResult):
            return atoms
    centres, atom_z = atoms
    n_atoms = len(centres)
    order = np.lexsort((centres[:, 2], centres[:, 1], centres[:, 0], atom_z))
    centres, atom_z = centres[order], atom_z[order]
    if n_atoms > 1:
        closest = closest_pair_ang(centres, matrix)
        if closest < config.min_distance_ang:
            return DecodeResult(None, "overlapping_atoms", f"two atoms {closest:.2f} A apart", n_atoms)
    if require_all_elements:
        missing = sorted(set(element_z.tolist()) - set(atom_z.tolist()))
        if missing:
            names = ",".join(Element.from_Z(z).symbol for z in missing)
            return DecodeResult(None, "wrong_element_count", f"no atom of {names}", n_atoms)
    structure = Structure(lattice, atom_z.tolist(), centres, coords_are_cartesian=False)
    return DecodeResult(structure, None, "", n_atoms)


def _cluster_atoms(coords: np.ndarray, species: np.ndarray, matrix: np.ndarray,
                   config: CodecConfig) -> "tuple[np.ndarray, np.ndarray] | DecodeResult":
    """Atoms by DBSCAN over each species' points: (centres (n, 3), atomic numbers (n,)), or a rejection."""
    # Identical points (a clean encoding repeats each site) are clustered once, with a weight.
    keyed = np.concatenate([coords, species[:, None].astype(np.float64)], axis=1)
    unique, inverse_counts = np.unique(keyed, axis=0, return_counts=True)
    u_coords, u_species = unique[:, :3], unique[:, 3].astype(np.int64)
    dist = periodic_distances(u_coords, u_coords, matrix)
    dist[u_species[:, None] != u_species[None, :]] = 1e6  # never cluster across species
    labels = _dbscan_labels(dist, inverse_counts, config)
    cluster_ids = [label for label in np.unique(labels) if label >= 0]  # -1 is DBSCAN noise, not an atom
    n_atoms = len(cluster_ids)
    if n_atoms == 0:
        return DecodeResult(None, "no_atoms", "no cluster of points found")
    if n_atoms > config.max_sites:
        return DecodeResult(None, "too_many_atoms", f"{n_atoms} atoms > {config.max_sites}", n_atoms)
    centres = np.empty((n_atoms, 3))
    atom_z = np.empty(n_atoms, dtype=np.int64)
    for k, label in enumerate(cluster_ids):
        members = np.flatnonzero(labels == label)
        weights = inverse_counts[members].astype(np.float64)
        ref = u_coords[members[np.argmax(weights)]]
        unwrapped = u_coords[members] - np.round(u_coords[members] - ref)
        centres[k] = np.mod(np.average(unwrapped, axis=0, weights=weights), 1.0)
        atom_z[k] = u_species[members[0]]
    return centres, atom_z


def _block_atoms(coords: np.ndarray, slot_of_point: np.ndarray, element_z: np.ndarray, matrix: np.ndarray,
                 config: CodecConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Atoms read from the codec's row blocks: (centres (n, 3), atomic numbers (n,)), or None when no n fits.

    For n = 1 .. max_sites the rows split into the blocks ``point_counts(n)``; the first n whose RMS
    distance of points from their block's periodic mean (Cartesian, Angstrom) is within ``block_rms_ang``
    is the atom count. A block's slot is the majority of its points' slots.
    """
    n_points = len(coords)
    for n in range(1, min(config.max_sites, n_points) + 1):
        means, rms_ang = block_means(coords, n, matrix)
        if rms_ang <= config.block_rms_ang:
            block = np.repeat(np.arange(n), point_counts(n, n_points))
            votes = np.zeros((n, N_ELEMENT_SLOTS), dtype=np.int64)
            np.add.at(votes, (block, slot_of_point), 1)
            return means, element_z[np.argmax(votes, axis=1)]
    return None


def block_means(coords: np.ndarray, n_sites: int, matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Periodic mean of each of the ``n_sites`` row blocks of ``point_counts`` in ``coords`` (n_points, 3):
    (positions (n_sites, 3) in [0, 1), RMS Cartesian distance in Angstrom of the points from their block's mean)."""
    n_points = len(coords)
    counts = point_counts(n_sites, n_points)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    block = np.repeat(np.arange(n_sites), counts)
    unwrapped = coords - np.round(coords - coords[starts][block])  # each point next to its block's first
    means = np.add.reduceat(unwrapped, starts, axis=0) / counts[:, None]
    residual = (unwrapped - means[block]) @ matrix
    return np.mod(means, 1.0), math.sqrt(float((residual**2).sum()) / n_points)


def _dbscan_labels(dist: np.ndarray, weights: np.ndarray, config: CodecConfig) -> np.ndarray:
    """DBSCAN labels (-1 = noise) for a precomputed distance matrix with point weights.

    When no two points lie within ``eps`` (a clean encoding: each site's copies coincide), DBSCAN's
    answer is known exactly (every point is its own cluster if it is heavy enough, else noise),
    so scikit-learn, whose input checks cost ~2 ms a call, is only asked otherwise.
    """
    off_diagonal = dist + np.diag(np.full(len(dist), np.inf))
    if off_diagonal.size == 0 or off_diagonal.min() > config.cluster_eps_ang:
        core = weights >= config.cluster_min_points
        labels = np.full(len(dist), -1, dtype=np.int64)
        labels[core] = np.arange(int(core.sum()))
        return labels
    from sklearn.cluster import DBSCAN

    model = DBSCAN(eps=config.cluster_eps_ang, min_samples=config.cluster_min_points, metric="precomputed")
    return model.fit_predict(dist, sample_weight=weights)


def _checked_lattice(lengths: np.ndarray, angles: np.ndarray, config: CodecConfig) -> Lattice | str:
    if not (np.all(np.isfinite(lengths)) and np.all(np.isfinite(angles))):
        return "non-finite lattice parameters"
    if np.any(lengths <= 0.1) or np.any(angles <= 0) or np.any(angles >= 180):
        return f"lattice parameters out of range: {np.round(lengths, 3)} {np.round(angles, 1)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = Lattice.from_parameters(*lengths, *angles)
    volume = lattice.volume
    if not math.isfinite(volume) or volume < config.min_volume_ang3 or np.any(~np.isfinite(lattice.matrix)):
        return f"lattice volume {volume:.3g} A^3 below {config.min_volume_ang3}"
    return lattice
