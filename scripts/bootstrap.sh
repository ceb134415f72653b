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
# GPAW (the followup stage's open DFT backend, extra [dft]) is built from source against these
# Debian libraries, serially (scripts/gpaw_siteconfig.py); PAW datasets come from PyPI gpaw-data.
gpaw_debs=(libxc-dev libopenblas-dev libfftw3-dev g++)
if ! dpkg -s "${gpaw_debs[@]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${gpaw_debs[@]}"
fi
export GPAW_CONFIG="$PWD/scripts/gpaw_siteconfig.py"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ]; then
  python -m pip install --quiet --upgrade pip setuptools wheel
  python -m pip install --quiet "torch==2.13.0"
  python -m pip install --quiet -e ".[test,mpi,mlip,eval,dft]"
  touch "$stamp"
fi
if ! python -c "import gpaw, gpaw_data" >/dev/null 2>&1; then  # an older .venv made before the extra
  python -m pip install --quiet "gpaw>=25.1" "gpaw-data>=1.0"
fi
python -c "import torch, gpaw, pccd_hpc; print(f'pccd_hpc {pccd_hpc.__version__} with torch {torch.__version__}, gpaw {gpaw.__version__} in .venv')"
