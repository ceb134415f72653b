"""Run an evaluation: the de novo, coverage and reconstruction parts, then evaluate.json and evaluate.md.

Folder layout of EDIR::

    part-<name>.json             one finished part (checkpoint sha256, settings, result, wall time)
    denovo-samples.npz           the de novo tensors and their element slots (part ``sample``)
    heldout-fingerprints.npz     cached fingerprints of the held-out structures (keyed by the data's sha256)
    reconstruct-*/               reconstruct.json and reconstruct.png of each reconstruction protocol
    evaluate.json, evaluate.md   the summary and the page (rebuilt on every run from the parts)
    figures/*.png                the page's figures
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from pccd_hpc.data.geometry import PLAUSIBLE_BOND_FACTOR
from pccd_hpc.evaluate.config import EvaluateConfig, EvaluatePaths
from pccd_hpc.evaluate.coverage import COMPOSITION_CUTOFF_MP20, STRUCTURE_CUTOFF_MP20, Fingerprints, coverage, fingerprint_structures
from pccd_hpc.evaluate.denovo import (
    HeldOut, cycled_systems, decode_samples, denovo_metrics, generate_decode_codec, load_heldout, push_samples,
    reference_geometry, sample_tensors, site_count_adherence,
)
from pccd_hpc.evaluate.machine import machine_info
from pccd_hpc.evaluate.parts import code_digest, folder_digest, run_part
from pccd_hpc.evaluate.reconstruction import protocols, run_protocol
from pccd_hpc.sampling.checkpoint_sampler import LoadedModel, load_model
from pccd_hpc.io_utils import atomic_path, atomic_write_json, checked_output_dir, json_safe, sha256_file

log = logging.getLogger(__name__)

SAMPLES_FILE = "denovo-samples.npz"
SITE_COUNTS_FREE = "not a condition of this model (every count is the model's own)"
SITE_COUNTS_DRAWN = ("a condition: de novo samples ask for counts drawn from the training distribution for their number "
                     "of elements; reconstruction withholds it, so its atom counts are the model's own")
HELDOUT_FINGERPRINTS = "heldout-fingerprints.npz"
# Keys of part results that are per-structure arrays: kept in the part files (for the figures),
# left out of evaluate.json.
ARRAY_KEYS = ("min_bond_ratio",)



def run_evaluate(config: EvaluateConfig, paths: EvaluatePaths) -> dict[str, Any]:
    """Run (or resume) every part of the evaluation of ``paths.checkpoint`` in ``paths.out``; return the evaluate.json content."""
    out = checked_output_dir(paths.out, "--out")
    loaded = load_model(str(paths.checkpoint), "cpu", config.precision)
    precision = "bf16" if getattr(loaded.model, "bf16", False) else "fp32"
    sha = loaded.sha256
    heldout_digest = folder_digest(paths.data)
    heldout = load_heldout(paths.data)
    codec = generate_decode_codec(loaded)
    # every part's figures depend on the code the evaluation runs: all package modules it can import
    code = code_digest(__name__)
    records: dict[str, dict] = {}

    sample_settings = {"data_sha256": heldout_digest, "n_samples": config.n_samples, "sampler": config.sampler,
                       "steps": config.steps, "guidance": config.guidance, "seed": config.seed,
                       "batch_size": config.batch_size, "precision": precision}
    records["sample"] = run_part(out, "sample", sha, {**sample_settings, "code_sha256": code},
                                 lambda: _sample(out, loaded, heldout, config),
                                 still_valid=lambda rec: _samples_intact(out, rec))
    # What the de novo figures are computed from: exactly these tensors, against these held-out structures.
    inputs = {"samples_sha256": records["sample"]["result"]["samples_sha256"], "data_sha256": heldout_digest,
              "codec": codec.to_dict()}

    @lru_cache(maxsize=1)
    def decoded():
        with np.load(out / SAMPLES_FILE) as data:
            return decode_samples(data["tensors"], data["element_z"], codec)

    def requested() -> np.ndarray | None:
        with np.load(out / SAMPLES_FILE) as data:
            return data["n_sites"] if "n_sites" in data else None

    denovo_settings = {**inputs, "plausible_factor": PLAUSIBLE_BOND_FACTOR, "code_sha256": code}
    records["denovo"] = run_part(out, "denovo", sha, denovo_settings, lambda: _denovo(decoded(), heldout, requested()))

    @lru_cache(maxsize=1)
    def pushed():
        with np.load(out / SAMPLES_FILE) as data:
            return push_samples(data["tensors"], data["element_z"], codec, config.push_apart_factor)

    if config.push_apart_factor is not None:
        pushed_settings = {**denovo_settings, "push_apart_factor": config.push_apart_factor}
        records["denovo-pushed"] = run_part(out, "denovo-pushed", sha, pushed_settings,
                                            lambda: _denovo_pushed(pushed(), heldout))

    if config.skip_coverage:
        records["coverage"] = {"skipped": "not computed: --skip-coverage was given"}
    else:
        cov_settings = {**inputs, "structure_cutoff": STRUCTURE_CUTOFF_MP20, "composition_cutoff": COMPOSITION_CUTOFF_MP20,
                        "code_sha256": code}
        records["coverage"] = run_part(out, "coverage", sha, cov_settings,
                                       lambda: _coverage(out, decoded(), heldout, heldout_digest, code))
        if config.push_apart_factor is not None:
            pushed_cov = {**cov_settings, "push_apart_factor": config.push_apart_factor}
            records["coverage-pushed"] = run_part(out, "coverage-pushed", sha, pushed_cov,
                                                  lambda: _coverage(out, pushed()[0], heldout, heldout_digest, code))

    timesteps = loaded.config.diffusion.timesteps
    for protocol in protocols(paths.data, paths.train_data, config.n_reconstruct, config.n_train_reconstruct,
                              config.partial_t, timesteps):
        digest = heldout_digest if protocol.data == paths.data else folder_digest(protocol.data)
        settings = {"data_sha256": digest, "n": protocol.n, "t": protocol.t, "steps": config.steps,
                    "guidance": config.guidance, "seed": config.seed, "batch_size": config.batch_size,
                    "codec": codec.to_dict(), "precision": precision, "push_apart_factor": config.push_apart_factor,
                    "code_sha256": code}

        def compute(protocol=protocol):
            metrics = run_protocol(loaded, protocol, out, config.steps, config.guidance, config.seed,
                                   config.batch_size, codec, config.push_apart_factor)
            metrics["not_computed"] = _reconstruction_gaps(metrics)
            return metrics, int(metrics["n"])

        records[protocol.name] = run_part(out, protocol.name, sha, settings, compute,
                                          still_valid=lambda rec, p=protocol: (out / p.name / "reconstruct.json").exists())

    if config.csp_targets > 0:
        from pccd_hpc.evaluate.csp import run_csp_part

        records["csp"] = run_csp_part(out, config, loaded, heldout, heldout_digest)
    summary = _summary(config, paths, loaded, precision, heldout, heldout_digest, records)
    summary["csp"] = records["csp"]["result"] if "csp" in records else None
    atomic_write_json(out / "evaluate.json", summary)
    from pccd_hpc.evaluate.page import write_page

    write_page(out, summary, records)
    log.info("evaluation written: %s, %s", out / "evaluate.json", out / "evaluate.md")
    return summary


def _sample(out: Path, loaded: LoadedModel, heldout: HeldOut, config: EvaluateConfig) -> tuple[dict, int]:
    systems = cycled_systems(heldout.element_z, config.n_samples, config.seed)
    tensors, n_sites = sample_tensors(loaded, systems, config.sampler, config.steps, config.guidance, config.seed,
                                      config.batch_size)
    with atomic_path(out / SAMPLES_FILE) as tmp:
        with open(tmp, "wb") as fh:
            asked = {} if n_sites is None else {"n_sites": n_sites}
            np.savez(fh, tensors=tensors, element_z=systems, **asked)
    n_systems = len({tuple(sorted(set(row.tolist()))) for row in systems})
    return {"n_samples": len(tensors), "n_chemical_systems": n_systems,
            "samples_sha256": sha256_file(out / SAMPLES_FILE)}, len(tensors)


# figures of a reconstruction that can be missing, and why
_RECONSTRUCTION_GAPS = (("rms_mean", "no reconstruction matched its original"),
                        ("coordinate_mae_frac", "no reconstruction with the right atoms"),
                        ("atom_error_ang", "no reconstruction with the right atoms"))


def _reference_gaps(reference: dict) -> dict[str, str]:
    """Why a figure of the held-out reference (``heldout_reference`` in evaluate.json) is missing: an empty site bin."""
    return {f"heldout_reference.by_sites.{row['sites']}.plausible_pct": "no held-out structure with that many sites"
            for row in reference.get("by_sites", []) if row["plausible_pct"] is None}


def _reconstruction_gaps(metrics: dict) -> dict[str, str]:
    """Why each missing figure of one reconstruction is missing: as decoded, as sampled, and for the noisy input.

    A figure missing only as sampled is reported under its plain key, as the page shows the as-sampled value.
    """
    as_sampled, noisy = metrics.get("as_sampled") or {}, metrics.get("noisy_input") or {}
    gaps: dict[str, str] = {}
    for key, reason in _RECONSTRUCTION_GAPS:
        if _missing(metrics.get(key)) or (key in as_sampled and _missing(as_sampled[key])):
            gaps[key] = reason
        if key in noisy and _missing(noisy[key]):
            gaps[f"noisy_input.{key}"] = "the noisy input, decoded, had no structure with the right atoms"
    return gaps


def _missing(value: Any) -> bool:
    """True for a figure that was not computed: None, or a float that is not finite."""
    return value is None or (isinstance(value, float) and not np.isfinite(value))


def _samples_intact(out: Path, record: dict) -> bool:
    path = out / SAMPLES_FILE
    return path.exists() and sha256_file(path) == record["result"].get("samples_sha256")


def _denovo(decoded, heldout: HeldOut, requested: np.ndarray | None) -> tuple[dict, int]:
    result = denovo_metrics(decoded, heldout.structures)
    result["heldout"] = reference_geometry(heldout.structures)
    if requested is not None:
        result["site_count"] = site_count_adherence(decoded, requested)
    return result, len(decoded)


def _denovo_pushed(pushed: tuple[list, dict], heldout: HeldOut) -> tuple[dict, int]:
    samples, stats = pushed
    result = denovo_metrics(samples, heldout.structures)
    result["push_apart"] = stats
    result["not_computed"].update({f"push_apart.{k}": "no decoded sample to push apart" for k, v in stats.items() if v is None})
    return result, len(samples)


def _coverage(out: Path, decoded, heldout: HeldOut, heldout_digest: str, code: str) -> tuple[dict, int]:
    from importlib.metadata import version

    cache = out / HELDOUT_FINGERPRINTS
    # cached fingerprints count only for the same structures, fingerprint code and matminer
    key = f"{heldout_digest}:{code}:matminer-{version('matminer')}"
    reference = Fingerprints.load(cache, key)
    cached = reference is not None
    if reference is None:
        reference = fingerprint_structures(heldout.structures, "held-out structures")
        reference.save(cache, key)
    structures = [s.structure for s in decoded if s.structure is not None]
    generated = fingerprint_structures(structures, "generated structures")
    result: dict[str, Any] = coverage(generated, reference, n_generated=len(decoded))
    result["heldout_fingerprints_cached"] = cached
    result["not_computed"] = {k: "no fingerprinted structure to compare" for k, v in result.items() if v is None}
    for key in ("cov_recall", "cov_precision"):
        result[f"{key}_pct"] = None if result[key] is None else 100.0 * result[key]
    return result, len(decoded)


def _timing(record: dict) -> dict[str, Any]:
    return {"wall_s": record.get("wall_s"), "cpu_s": record.get("cpu_s"), "n_items": record.get("n_items"),
            "items_per_s": record.get("items_per_s"),
            "reused_from_earlier_run": record.get("reused", False),
            "torch_threads": (record.get("machine") or {}).get("torch_threads"),
            "cpus_usable": (record.get("machine") or {}).get("cpus_usable")}


def _strip_arrays(result: dict) -> dict:
    return {k: (_strip_arrays(v) if isinstance(v, dict) else v) for k, v in result.items() if k not in ARRAY_KEYS}


def _summary(config: EvaluateConfig, paths: EvaluatePaths, loaded: LoadedModel, precision: str, heldout: HeldOut, heldout_digest: str,
             records: dict[str, dict]) -> dict[str, Any]:
    not_computed: dict[str, str] = {}
    for name, record in records.items():
        if "skipped" in record:
            not_computed[name] = record["skipped"]
        for key, reason in (record.get("not_computed") or {}).items():
            not_computed[f"{name}.{key}"] = reason
    not_computed.update(_reference_gaps(records["denovo"]["result"].get("heldout") or {}))
    if config.push_apart_factor is None:
        not_computed["denovo-pushed"] = "not computed: push_apart_factor is None (--no-push-apart)"
    if paths.train_data is None:
        not_computed["reconstruct-train-tT"] = "not computed: no --train-data given"
    recon = {name: _strip_arrays(rec["result"]) for name, rec in records.items() if name.startswith("reconstruct-")}
    denovo = _strip_arrays(records["denovo"]["result"])
    summary = {
        "checkpoint": {"path": str(paths.checkpoint), "sha256": loaded.sha256, "step": loaded.step,
                       "preset": loaded.config.preset, "network": type(getattr(loaded.model, "net", loaded.model)).__name__,
                       "precision": precision,
                       "parameters": int(sum(p.numel() for p in loaded.model.parameters())),
                       "number_of_sites": SITE_COUNTS_DRAWN if loaded.config.model.site_condition else SITE_COUNTS_FREE,
                       "config": loaded.config.to_dict()},
        "settings": {**paths.to_dict(), **config.to_dict()},
        "data": {"heldout": {"path": str(paths.data), "sha256": heldout_digest, "n_records": len(heldout.structures)},
                 "train": None if paths.train_data is None else {"path": str(paths.train_data)}},
        "machine": machine_info(),
        "denovo": {k: v for k, v in denovo.items() if k != "heldout"},
        "heldout_reference": denovo.get("heldout"),
        "coverage": None if "skipped" in records["coverage"] else _strip_arrays(records["coverage"]["result"]),
        # the same samples after the generate stage's push-apart (absent with push_apart_factor None)
        "denovo_pushed": _strip_arrays(records["denovo-pushed"]["result"]) if "denovo-pushed" in records else None,
        "coverage_pushed": _strip_arrays(records["coverage-pushed"]["result"]) if "coverage-pushed" in records else None,
        "reconstruction": recon,
        "timing": {name: _timing(rec) for name, rec in records.items() if "skipped" not in rec},
    }
    summary = json_safe(summary, not_computed)
    summary["not_computed"] = not_computed
    return summary
