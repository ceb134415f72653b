"""The pair-distance loss: true lattices, zero for the truth, translation invariance, real distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pccd_hpc.data.codec import CodecConfig, encode_structure
from pccd_hpc.data.sample import sample_csv_path
from pccd_hpc.data.readers import enumerate_records, parse_record
from pccd_hpc.model.diffusion import to_model_space
from pccd_hpc.model.distance_loss import ROW_STRIDE, lattice_matrices, pair_distance_loss


def _encoded(n: int = 6):
    codec = CodecConfig()
    out = []
    for raw in enumerate_records([str(sample_csv_path())]):
        try:
            enc = encode_structure(parse_record(raw), codec)
        except Exception:  # noqa: BLE001 - records outside the codec's limits are simply skipped here
            continue
        out.append(enc)
        if len(out) == n:
            break
    return codec, out


def test_lattice_matrices_reproduce_lengths_angles_and_volume() -> None:
    codec, encoded = _encoded()
    x = torch.from_numpy(np.stack([e.tensor for e in encoded]))
    mats = lattice_matrices(x, codec).double()
    for m, e in zip(mats, encoded):
        lattice = e.structure.lattice
        assert np.allclose(torch.linalg.vector_norm(m, dim=1).numpy(), lattice.abc, rtol=1e-4)
        assert abs(abs(torch.det(m).item()) - lattice.volume) < 1e-3 * lattice.volume


def test_loss_is_zero_for_the_truth_and_for_a_shifted_copy_and_grows_with_error() -> None:
    codec, encoded = _encoded()
    x = torch.from_numpy(np.stack([e.tensor for e in encoded]))
    lattice, x0 = lattice_matrices(x, codec), to_model_space(x)
    assert torch.allclose(pair_distance_loss(x0, x0, lattice), torch.zeros(len(encoded)), atol=1e-4)
    shifted = x0.clone()
    shifted[:, 0] += 0.2  # the same crystal, another origin (model space: 0.1 in fractional units)
    assert torch.allclose(pair_distance_loss(shifted, x0, lattice), torch.zeros(len(encoded)), atol=1e-4)
    noisy = x0.clone()
    noisy[:, 0] += 0.05 * torch.randn(noisy[:, 0].shape, generator=torch.Generator().manual_seed(0))
    multi = torch.tensor([e.n_sites > 1 for e in encoded])
    loss = pair_distance_loss(noisy, x0, lattice)
    assert (loss[multi] > 0.01).all() and multi.sum() >= 3
    assert (loss[~multi] == 0).all()  # one atom per cell: no pair of distinct atoms


def test_distances_are_the_structures_nearest_image_distances() -> None:
    """With the prediction collapsed onto one point, the loss is mean | |image| - d | over true pairs below the cut-off
    (the true pair's minimum image is applied to the predicted difference)."""
    codec, encoded = _encoded(3)
    e = encoded[0]
    x = torch.from_numpy(e.tensor[None])
    x0 = to_model_space(x)
    collapsed = x0.clone()
    collapsed[:, 0] = 0.0
    got = pair_distance_loss(collapsed, x0, lattice_matrices(x, codec), cutoff_ang=5.0).item()
    frac = np.mod(e.tensor[0, ::ROW_STRIDE].astype(np.float64), 1.0)
    lattice = e.structure.lattice
    dists = []
    for i in range(len(frac)):
        for j in range(len(frac)):
            d = frac[i] - frac[j]
            image = np.round(d)
            dist = np.linalg.norm(lattice.get_cartesian_coords(d - image))
            if 0.3 < dist < 5.0:
                dists.append(abs(np.linalg.norm(lattice.get_cartesian_coords(-image)) - dist))
    assert len(dists) > 0 and abs(got - np.mean(dists)) < 1e-3 * np.mean(dists)
