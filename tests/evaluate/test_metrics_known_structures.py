"""Plausibility and coverage on known structures, checked against independent brute-force computations."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Lattice, Structure

from pccd_hpc.data.codec import DecodeResult
from pccd_hpc.evaluate.coverage import Fingerprints, coverage, fingerprint_structures, normalise_composition
from pccd_hpc.evaluate.denovo import DecodedSample, denovo_metrics, load_heldout, reference_geometry

SCALER = json.loads((Path(__file__).resolve().parents[2] / "pccd_hpc" / "evaluate" / "cdvae_comp_scaler.json").read_text())


def _brute_force_min_ratio(s: Structure, reach: int = 2) -> float:
    """min over pairs and lattice images (|n_k| <= reach) of d_ij / (r_i + r_j), by explicit loops."""
    radii = [CovalentRadius.radius[site.specie.symbol] for site in s]
    best = np.inf
    for i, j in itertools.product(range(len(s)), repeat=2):
        for image in itertools.product(range(-reach, reach + 1), repeat=3):
            if i == j and image == (0, 0, 0):
                continue
            d = np.linalg.norm((s.frac_coords[j] + image - s.frac_coords[i]) @ s.lattice.matrix)
            best = min(best, d / (radii[i] + radii[j]))
    return float(best)


def _samples(structures, element_z):
    return [DecodedSample(DecodeResult(s), tuple(int(z) for z in slots)) for s, slots in zip(structures, element_z)]


def test_plausibility_of_real_structures_matches_brute_force(small_shards: Path) -> None:
    heldout = load_heldout(small_shards)
    brute = [_brute_force_min_ratio(s) for s in heldout.structures]
    ref = reference_geometry(heldout.structures)
    assert ref["min_bond_ratio"] == pytest.approx(brute, rel=1e-9)
    expected_pct = 100 * np.mean(np.array(brute) >= 0.7)
    assert expected_pct == 100  # real MP crystals: no atoms closer than 0.7 x the covalent-radius sum
    metrics = denovo_metrics(_samples(heldout.structures, heldout.element_z), heldout.structures)
    assert metrics["plausible_pct"] == metrics["valid_and_plausible_pct"] == pytest.approx(expected_pct)
    assert metrics["decode_valid_pct"] == metrics["valid_pct"] == metrics["element_count_correct_pct"] == 100
    assert metrics["wdist_density"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["wdist_n_elements"] == pytest.approx(0.0, abs=1e-12)
    counts = [len(s) for s in heldout.structures]
    for row in ref["by_sites"]:  # every real crystal is plausible, whatever its size
        low, high = map(int, row["sites"].split("-"))
        assert row["n"] == sum(low <= n <= high for n in counts)
        assert row["plausible_pct"] == (100 if row["n"] else None)
    assert sum(row["share_pct"] for row in ref["by_sites"]) == pytest.approx(100)


def test_overlapping_atoms_missing_elements_and_failed_decodes_count_against_all_samples(small_shards: Path) -> None:
    real = load_heldout(small_shards).structures[0]
    real_slots = tuple(sorted({site.specie.Z for site in real})) * 3
    overlap = Structure(Lattice.cubic(5.0), ["Si", "Si"], [[0, 0, 0], [0.06, 0, 0]])  # 0.3 A apart
    assert _brute_force_min_ratio(overlap) == pytest.approx(0.3 / (2 * CovalentRadius.radius["Si"]))
    mg_only = Structure(Lattice.cubic(4.2), ["Mg"], [[0, 0, 0]])
    samples = [
        DecodedSample(DecodeResult(real), real_slots[:3]),
        DecodedSample(DecodeResult(overlap), (14, 14, 14)),
        DecodedSample(DecodeResult(mg_only), (12, 8, 8)),  # O was requested but has no atom
        DecodedSample(DecodeResult(None, "no_atoms"), (14, 14, 14)),
    ]
    m = denovo_metrics(samples, [real])
    assert m["n_samples"] == 4
    assert m["decode_valid_pct"] == pytest.approx(75)
    assert m["valid_pct"] == m["element_count_correct_pct"] == pytest.approx(50)
    assert m["plausible_pct"] == pytest.approx(50)  # the real crystal and lone Mg; not the 0.3 A pair
    assert m["valid_and_plausible_pct"] == pytest.approx(25)
    assert m["short_bond_pct_of_valid"] == pytest.approx(50)
    # of the two valid samples, the Si pair 0.3 A apart is not a repeat (0.25 A tolerance); the real cell is primitive
    assert m["supercell_pct_of_valid"] == pytest.approx(50 * (len(real.get_primitive_structure()) < len(real)))
    # the real crystal has symmetry, the two Si atoms 0.3 A apart in a cube keep some too: spglib decides
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    expected = [SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number() != 1 for s in (real, overlap)]
    assert m["non_p1_pct_of_valid"] == pytest.approx(50 * sum(expected))
    doubled = real.copy().make_supercell([1, 2, 1])
    assert denovo_metrics([DecodedSample(DecodeResult(doubled), real_slots[:3])], [real])["supercell_pct_of_valid"] == 100
    assert m["rejection_reasons"] == {"no_atoms": 1, "missing_requested_element": 1}
    # by number of sites, over the 3 decoded samples: lone Mg and the Si pair in 1-4, the real crystal in its own bin
    bins = {row["sites"]: row for row in m["by_sites"]}
    assert sum(row["n"] for row in m["by_sites"]) == 3
    assert all((row["plausible_pct"] is None) == (f"by_sites.{row['sites']}.plausible_pct" in m["not_computed"])
               for row in m["by_sites"])  # an empty bin is explained, a filled one is not
    assert bins["1-4"]["n"] == 2 + (len(real) <= 4) and bins["1-4"]["plausible_pct"] == pytest.approx(
        100 * (1 + (len(real) <= 4)) / bins["1-4"]["n"])


def test_cdvae_composition_scaling_fits_real_mp_compositions(small_shards: Path) -> None:
    structures = load_heldout(small_shards).structures
    fp = fingerprint_structures(structures)
    z = normalise_composition(fp.composition)
    raw = np.asarray(fp.composition)
    independent = np.nan_to_num((raw - np.array(SCALER["means"])) / np.array(SCALER["stds"]), nan=0.0)
    assert np.allclose(z, independent)
    # CDVAE's statistics come from MP-20: the same feature order gives z-scores of order one.
    assert np.all(np.abs(z.mean(axis=0)) < 3), np.abs(z.mean(axis=0)).max()
    assert normalise_composition(np.full((1, raw.shape[1]), np.nan)).tolist() == [[0.0] * raw.shape[1]]


def _loop_coverage(gen_s, gen_c, ref_s, ref_c, n_generated, s_cut=0.4, c_cut=10.0):
    def nearest(a, pool):
        return min(float(np.sqrt(((a - b) ** 2).sum())) for b in pool)

    recall = np.mean([nearest(rs, gen_s) <= s_cut and nearest(rc, gen_c) <= c_cut for rs, rc in zip(ref_s, ref_c)])
    precision = sum(nearest(gs, ref_s) <= s_cut and nearest(gc, ref_c) <= c_cut for gs, gc in zip(gen_s, gen_c)) / n_generated
    return recall, precision


def test_coverage_of_real_structures_against_themselves_and_subsets(small_shards: Path) -> None:
    structures = load_heldout(small_shards).structures
    fp = fingerprint_structures(structures)
    assert fp.ok.all()
    full = coverage(fp, fp, n_generated=len(structures))
    assert full["cov_recall"] == 1.0 and full["cov_precision"] == 1.0
    assert full["amsd_recall"] == 0.0

    # half of them generated, plus two failed decodes (no fingerprint, still in the COV-P denominator)
    half = Fingerprints(fp.structure[:6], fp.composition[:6], fp.ok[:6])
    got = coverage(half, fp, n_generated=8)
    zc = normalise_composition(fp.composition)
    want_recall, want_precision = _loop_coverage(fp.structure[:6], zc[:6], fp.structure, zc, 8)
    assert got["cov_recall"] == pytest.approx(want_recall)
    assert got["cov_precision"] == pytest.approx(want_precision) == pytest.approx(6 / 8)
    assert got["cov_recall"] < 1.0  # some held-out crystals have no generated neighbour

    nothing = coverage(Fingerprints(fp.structure[:0], fp.composition[:0], fp.ok[:0]), fp, n_generated=5)
    assert nothing["cov_recall"] == 0.0 and nothing["cov_precision"] == 0.0 and nothing["amsd_recall"] is None
