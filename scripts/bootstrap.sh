#!/usr/bin/env bash
# Set up (idempotently) a virtual environment in .venv with pccd_hpc and everything it needs.
# CPU machines get the pinned CPU build of torch; on a GPU cluster install a CUDA build of
# torch==2.13.0 into the environment first (see env.yml), and this script keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.pccd-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip setuptools wheel
  python -m pip install --quiet "torch==2.13.0"
  python -m pip install --quiet -e ".[test,mpi,mlip,eval]"
  touch "$stamp"
fi
python -c "import torch, pccd_hpc; print(f'pccd_hpc {pccd_hpc.__version__} with torch {torch.__version__} in .venv')"
