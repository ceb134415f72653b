"""The encode stage: structures -> sharded HDF5 + manifest, one process or many MPI ranks.

Shard ``k`` always holds the records of inputs ``[k * shard_size, (k + 1) * shard_size)``, so the
output is the same whatever the number of ranks: rank ``r`` of ``K`` encodes shards
``k = r, r + K, ...``. Each shard is finished by two atomic writes, the HDF5 file and then its
summary ``shard-KKKKK.json`` (counts, rejections, sha256); a re-run keeps every shard whose
summary matches its file and inputs, and redoes the rest. Rank 0 then writes ``manifest.json``
and ``rejected.csv``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

from pccd_hpc import __version__
from pccd_hpc.data.codec import CodecConfig, RecordError, encode_structure
from pccd_hpc.data.readers import MAX_LATTICE_LENGTH_ANG, MIN_BOND_FACTOR, RawRecord, check_structure_sanity, enumerate_records, parse_record
from pccd_hpc.data.roundtrip import check_roundtrip, structure_matcher
from pccd_hpc.data.shards import SCHEMA_VERSION, ShardRecord, shard_name, write_shard
from pccd_hpc.folder_lock import folder_lock
from pccd_hpc.io_utils import atomic_write_csv, atomic_write_json, checked_output_dir, read_json, remove_stale_temps, sha256_file
from pccd_hpc.stage_config import require

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
REJECTED_NAME = "rejected.csv"


class RankGroup(Protocol):
    """What encoding needs from an MPI communicator (``mpi4py.MPI.Comm`` has it)."""

    def Get_rank(self) -> int: ...
    def Get_size(self) -> int: ...
    def barrier(self) -> None: ...


@dataclass
class EncodeConfig:
    """Settings of the encode stage."""

    inputs: list[str]
    """CSV files (``cif`` column), folders of CIF/POSCAR files, or ``.txt`` lists of them."""
    out_dir: str
    """Output folder for shards, ``manifest.json`` and ``rejected.csv``."""
    shard_size: int = 1024
    """Input records per shard."""
    codec: CodecConfig = field(default_factory=CodecConfig)
    """Codec settings (stored in every shard and the manifest)."""
    roundtrip_check: bool = True
    """Decode every record again and compare it with the input (``n_roundtrip_matched``)."""
    max_lattice_length_ang: float = MAX_LATTICE_LENGTH_ANG
    """Reject cells with a lattice vector longer than this (``lattice_out_of_range``)."""
    min_bond_factor: float = MIN_BOND_FACTOR
    """Reject structures with two atoms closer than this x the sum of covalent radii (``overlapping_atoms``)."""

    def __post_init__(self) -> None:
        self.inputs = [str(p) for p in self.inputs]
        require(bool(self.inputs), "inputs", "must name at least one file or folder")
        require(self.shard_size >= 1, "shard_size", f"must be >= 1, got {self.shard_size}")
        require(self.max_lattice_length_ang > 0, "max_lattice_length_ang", f"must be > 0, got {self.max_lattice_length_ang}")
        require(0 <= self.min_bond_factor < 2, "min_bond_factor", f"must be in [0, 2), got {self.min_bond_factor}")


def _fingerprint(records: Sequence[RawRecord]) -> str:
    digest = hashlib.sha256()
    for rec in records:
        digest.update(f"{rec.index}\t{rec.record_id}\t{rec.source}\n".encode())
        digest.update(hashlib.sha256((rec.cif or str(rec.path)).encode()).digest())
    return digest.hexdigest()


def _summary_path(out: Path, shard_index: int) -> Path:
    return out / shard_name(shard_index, ".json")


def _checks(config: EncodeConfig) -> dict[str, float]:
    return {"max_lattice_length_ang": config.max_lattice_length_ang, "min_bond_factor": config.min_bond_factor}


def _finished_summary(out: Path, shard_index: int, fingerprint: str, codec: dict, checks: dict | None = None) -> dict | None:
    """The shard's summary when shard and summary are complete and match these inputs, else None."""
    summary_path = _summary_path(out, shard_index)
    shard_path = out / shard_name(shard_index)
    if not (summary_path.exists() and shard_path.exists()):
        return None
    try:
        summary = read_json(summary_path, "shard summary")
    except (OSError, ValueError):
        return None
    if summary.get("input_fingerprint") != fingerprint or summary.get("codec") != codec:
        return None
    if checks is not None and summary.get("checks") != checks:
        return None
    if summary.get("sha256") != sha256_file(shard_path):
        log.warning("%s does not match its summary: encoding it again", shard_path.name)
        return None
    return summary


def encode_shard(records: Sequence[RawRecord], config: EncodeConfig, shard_index: int, out: Path) -> dict:
    """Encode one shard's records, write the shard and its summary atomically, return the summary."""
    matcher = structure_matcher()
    encoded: list[ShardRecord] = []
    rejections: list[dict[str, Any]] = []
    unmatched: list[dict[str, Any]] = []
    n_matched = n_count_matched = 0
    for raw in records:
        try:
            structure = parse_record(raw)
            check_structure_sanity(structure, raw.record_id, raw.source, config.max_lattice_length_ang, config.min_bond_factor)
            enc = encode_structure(structure, config.codec, raw.record_id)
        except RecordError as err:
            rejections.append({"index": raw.index, "record_id": raw.record_id, "source": raw.source, "reason": err.reason, "message": str(err)})
            continue
        except Exception as err:  # an unexpected failure on one record must not lose the shard
            log.exception("record %s (%s) failed", raw.record_id, raw.source)
            message = f"record {raw.record_id}: {type(err).__name__}: {err}"
            rejections.append({"index": raw.index, "record_id": raw.record_id, "source": raw.source, "reason": "encode_error", "message": message})
            continue
        if config.roundtrip_check:
            result = check_roundtrip(structure, enc, config.codec, matcher)
            n_matched += result.matched
            n_count_matched += result.atom_count_matched
            if not result.matched:
                unmatched.append({"index": raw.index, "record_id": raw.record_id, "reason": result.reason})
        encoded.append(
            ShardRecord(raw.record_id, raw.source, raw.index, enc.tensor, enc.element_z, enc.atomic_numbers, enc.frac_coords, enc.lattice_params, raw.properties)
        )
    shard_path = out / shard_name(shard_index)
    write_shard(shard_path, encoded, config.codec.to_dict(), config.codec.max_sites)
    summary = {
        "shard": shard_path.name,
        "shard_index": shard_index,
        "input_range": [records[0].index, records[-1].index + 1] if records else [0, 0],
        "input_fingerprint": _fingerprint(records),
        "codec": config.codec.to_dict(),
        "checks": _checks(config),
        "n_input": len(records),
        "n_records": len(encoded),
        "n_rejected": len(rejections),
        "n_roundtrip_matched": n_matched if config.roundtrip_check else None,
        "n_atom_count_matched": n_count_matched if config.roundtrip_check else None,
        "rejections": rejections,
        "roundtrip_unmatched": unmatched,
        "sha256": sha256_file(shard_path),
    }
    atomic_write_json(_summary_path(out, shard_index), summary)
    return summary


def run_encode(config: EncodeConfig, comm: RankGroup | None = None) -> dict | None:
    """Run the encode stage (resumable); return the manifest on rank 0, None on other ranks.

    ``comm`` splits the shards over MPI ranks (the caller picks it, e.g. ``MPI.COMM_WORLD``); None is one process,
    which holds the folder's lock (a second encode on the same --out is refused, naming the first).
    """
    rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
    out = checked_output_dir(config.out_dir)
    if size > 1:  # MPI ranks share the folder by design (each its own shards); one rank refusing would hang the rest
        return _run_encode(config, comm, out, rank, size)
    with folder_lock(out, f"encode --out {out}"):
        remove_stale_temps(out)
        return _run_encode(config, comm, out, rank, size)


def _run_encode(config: EncodeConfig, comm: RankGroup | None, out: Path, rank: int, size: int) -> dict | None:
    started = time.time()
    records = enumerate_records(config.inputs)
    n_shards = max(1, -(-len(records) // config.shard_size))
    codec = config.codec.to_dict()
    done_here = kept_here = 0
    for shard_index in range(rank, n_shards, size):
        chunk = records[shard_index * config.shard_size : (shard_index + 1) * config.shard_size]
        if _finished_summary(out, shard_index, _fingerprint(chunk), codec, _checks(config)) is not None:
            kept_here += 1
            continue
        summary = encode_shard(chunk, config, shard_index, out)
        done_here += 1
        log.info(
            "rank %d/%d: %s %d/%d records encoded, %d rejected",
            rank, size, summary["shard"], summary["n_records"], summary["n_input"], summary["n_rejected"],
        )
    log.info("rank %d/%d: %d shards encoded, %d verified and kept", rank, size, done_here, kept_here)
    if comm is not None:
        comm.barrier()
    if rank != 0:
        return None
    summaries = [read_json(_summary_path(out, k), "shard summary") for k in range(n_shards)]
    manifest = _manifest(config, records, summaries, time.time() - started)
    _write_rejected(out / REJECTED_NAME, summaries)
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return manifest


def _manifest(config: EncodeConfig, records: Sequence[RawRecord], summaries: list[dict], elapsed_s: float) -> dict:
    reasons = Counter(rej["reason"] for s in summaries for rej in s["rejections"])
    check = config.roundtrip_check
    return {
        "schema_version": SCHEMA_VERSION,
        "pccd_hpc_version": __version__,
        "inputs": [str(p) for p in config.inputs],
        "input_fingerprint": _fingerprint(records),
        "codec": config.codec.to_dict(),
        "shard_size": config.shard_size,
        "n_input": len(records),
        "n_encoded": sum(s["n_records"] for s in summaries),
        "n_rejected": sum(s["n_rejected"] for s in summaries),
        "n_roundtrip_matched": sum(s["n_roundtrip_matched"] for s in summaries) if check else None,
        "n_atom_count_matched": sum(s["n_atom_count_matched"] for s in summaries) if check else None,
        "rejection_reasons": dict(sorted(reasons.items())),
        "roundtrip_unmatched": [u for s in summaries for u in s["roundtrip_unmatched"]],
        "shards": [{"name": s["shard"], "n_records": s["n_records"], "sha256": s["sha256"]} for s in summaries],
        "elapsed_s_last_run": round(elapsed_s, 3),
    }


def _write_rejected(path: Path, summaries: list[dict]) -> None:
    rows = [rejection for summary in summaries for rejection in summary["rejections"]]
    atomic_write_csv(path, rows, ["index", "record_id", "source", "reason", "message"])


def load_manifest(folder: str | Path) -> dict:
    """Read a shard folder's ``manifest.json`` (``FileNotFoundError`` naming the folder if absent)."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {MANIFEST_NAME}: not an encoded shard folder (run encode first)")
    return read_json(path, "manifest")
