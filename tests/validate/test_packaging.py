"""Packaging: a wheel (non-editable install) carries the SLURM job scripts and the hull reference,
and torch is a range (a cluster's CUDA torch satisfies it; no second torch is pulled)."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_torch_is_a_range_and_env_yml_uses_a_maintained_channel() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    requires = [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    torch_req = next(r for r in requires if r.startswith("torch"))
    assert "==" not in torch_req and ">=" in torch_req, torch_req
    env = (REPO / "env.yml").read_text()
    channels = env.split("channels:")[1].split("dependencies:")[0]
    assert "conda-forge" in channels and "- pytorch" not in channels and "nvidia" not in channels
    assert "==" not in env.split("- pytorch")[1].splitlines()[0]


@pytest.mark.slow
def test_wheel_install_ships_job_scripts_and_reference(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheel_dir), str(REPO)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheel_dir.glob("pccd_hpc-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pccd_hpc/jobs/validate_array.sh", "pccd_hpc/jobs/vasp_array.sh", "pccd_hpc/jobs/generate_array.sh",
                   "pccd_hpc/jobs/followup_step.sh", "pccd_hpc/validate/data/mp20_dft_hull.json.gz",
                   "pccd_hpc/validate/data/element_references.json", "pccd_hpc/validate/data/calibration_structures.json.gz"):
        assert needed in names, needed
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-2000:]
    probe = ("import pccd_hpc, pathlib; from pccd_hpc.validate.submit import JOBS_DIR; "
             "from pccd_hpc.validate.dft_hull import load_dft_hull_data; "
             "print(pccd_hpc.__file__); print((JOBS_DIR / 'validate_array.sh').is_file()); "
             "print(len(load_dft_hull_data()['entries']) > 20000)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    module_file, has_script, has_reference = out.stdout.split()
    assert module_file.startswith(str(target))  # the installed copy, not the source tree
    assert has_script == "True" and has_reference == "True"
