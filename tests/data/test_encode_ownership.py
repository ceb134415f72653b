"""Issue 30 for encode: a stray file in an input folder is one named rejection; one writer per --out (two processes)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from pymatgen.core import Lattice, Structure

from pccd_hpc.launch import main as launch_main

REPO = Path(__file__).resolve().parents[2]

_HOLD = """
import sys, time
from pccd_hpc.folder_lock import folder_lock
with folder_lock(sys.argv[1], "encode --out " + sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _inputs(folder: Path) -> Path:
    folder.mkdir()
    for i, a in enumerate((4.1, 4.2)):
        Structure(Lattice.cubic(a), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(folder / f"m{i}.cif"))
    (folder / "notes.csv").write_text("name,value\nx,1\n")  # a stray CSV without a cif column
    return folder


def test_stray_csv_is_one_rejection_and_the_rest_is_encoded(tmp_path: Path) -> None:
    out = tmp_path / "enc"
    assert launch_main(["encode", "--input", str(_inputs(tmp_path / "in")), "--out", str(out), "--no-roundtrip-check"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_encoded"] == 2 and manifest["rejection_reasons"] == {"bad_csv": 1}
    with open(out / "rejected.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["record_id"] == "notes.csv" and "no 'cif' column" in row["message"]


def test_csv_named_on_the_command_line_without_cif_column_still_stops(tmp_path: Path, caplog) -> None:
    (tmp_path / "notes.csv").write_text("name,value\nx,1\n")
    assert launch_main(["encode", "--input", str(tmp_path / "notes.csv"), "--out", str(tmp_path / "enc")]) == 2
    assert "CSV has no 'cif' column" in caplog.text


def test_second_encode_on_one_folder_is_refused_naming_the_first(tmp_path: Path, caplog) -> None:
    out = tmp_path / "enc"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert launch_main(["encode", "--input", str(_inputs(tmp_path / "in")), "--out", str(out)]) == 2
        assert f"{out} is in use: encode --out {out} by pid {holder.pid}" in caplog.text
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()
        holder.wait()
