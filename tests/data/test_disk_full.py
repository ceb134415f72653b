"""Issue 30: a full disk is a sentence naming the folder and the space needed, leaves no temp files, and the
same command resumes once there is room (a real 2 MB tmpfs; skipped with the reason where it cannot be mounted)."""

from __future__ import annotations

import os
from pathlib import Path

from pymatgen.core import Lattice, Structure

from pccd_hpc.launch import main as launch_main


def fill(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` up to ``leave_bytes`` free; return the filler file."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    filler.write_bytes(bytes(max(0, free - leave_bytes)))
    return filler


def test_encode_on_a_full_disk_says_so_and_resumes(small_tmpfs: Path, tmp_path: Path, caplog) -> None:
    inputs = tmp_path / "cifs"
    inputs.mkdir()
    for i, a in enumerate((4.1, 4.2, 4.3)):
        Structure(Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(inputs / f"m{i}.cif"))
    filler = fill(small_tmpfs, 8_000)  # a shard of 3 records is about 25 kB
    out = small_tmpfs / "enc"
    assert launch_main(["encode", "--input", str(inputs), "--out", str(out), "--no-roundtrip-check"]) == 2
    assert f"no space left in {out} (disk or quota full): shard-00000.h5 needs about" in caplog.text
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    filler.unlink()
    (out / ".shard-00000.h5.k3j2.tmp").write_bytes(b"left by a writer killed mid-write")
    assert launch_main(["encode", "--input", str(inputs), "--out", str(out), "--no-roundtrip-check"]) == 0
    assert (out / "manifest.json").exists()
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the next run cleans up
