"""Encode throughput: structures/s for parse + encode + round-trip check, 1 process and MPI ranks.

Usage: python benchmarks/encode.py [--data ../shared/data] [--ranks 2]

Prints, for the shared data sets (or the bundled sample when ../shared is absent):
* codec only (parsed structures in memory): encode + decode + round-trip check, per core;
* the whole encode stage (CSV parse included) with 1 process and with ``mpiexec -n RANKS``,
  and the speed-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from pymatgen.core import Structure

from pccd_hpc.data.codec import CodecConfig, RecordError, encode_structure
from pccd_hpc.data.roundtrip import check_roundtrip, structure_matcher
from pccd_hpc.data.sample import sample_csv_path

csv.field_size_limit(sys.maxsize)
SETS = ("mp_20_sample/train.csv", "carbon_24/train.csv", "perov_5/train.csv")


def codec_rate(paths: list[Path]) -> tuple[int, float, float]:
    """(structures encoded, parse rate /s, encode+roundtrip rate /s) over already parsed structures."""
    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            rows += [r["cif"] for r in csv.DictReader(fh)]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = [Structure.from_str(c, fmt="cif") for c in rows]
    parse_s = time.perf_counter() - t0
    codec, matcher, n = CodecConfig(), structure_matcher(), 0
    check_roundtrip(structures[0], encode_structure(structures[0], codec), codec, matcher)  # warm imports
    t0 = time.perf_counter()
    for s in structures:
        try:
            enc = encode_structure(s, codec)
        except RecordError:
            continue
        n += check_roundtrip(s, enc, codec, matcher).matched
    return n, len(structures) / parse_s, len(structures) / (time.perf_counter() - t0)


def stage_seconds(paths: list[Path], ranks: int) -> float:
    """Wall time of the encode CLI over ``paths`` with ``ranks`` MPI ranks (1 = no mpiexec)."""
    out = tempfile.mkdtemp(prefix="pccd-bench-")
    cmd = [sys.executable, "-m", "pccd_hpc.launch", "--log-level", "WARNING", "encode", "--input", *map(str, paths),
           "--out", out, "--shard-size", "256"]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
        cmd = [mpiexec, "-n", str(ranks), *cmd]
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # one core per rank
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(out)
    return elapsed


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    paths = [data / s for s in SETS] if data.is_dir() else [sample_csv_path()]
    n_records = 0
    for p in paths:
        with open(p, newline="") as fh:
            n_records += sum(1 for _ in csv.DictReader(fh))
    print(f"inputs: {', '.join(str(p) for p in paths)} ({n_records} records), {os.cpu_count()} cores")
    n, parse_rate, codec = codec_rate(paths)
    print(f"codec only, 1 core: encode + decode + round-trip check {codec:8.0f} structures/s ({n} matched)")
    print(f"CIF parsing (pymatgen), 1 core:                       {parse_rate:8.0f} structures/s")
    one = stage_seconds(paths, 1)
    many = stage_seconds(paths, args.ranks)
    print(f"encode stage, 1 process:      {n_records / one:8.0f} records/s ({one:.1f} s, process start included)")
    print(f"encode stage, mpiexec -n {args.ranks}:   {n_records / many:8.0f} records/s ({many:.1f} s), speed-up {one / many:.2f}x")


if __name__ == "__main__":
    main()
