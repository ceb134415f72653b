#!/usr/bin/env bash
# Set up (idempotently) a virtual environment in .venv with pccd_hpc and everything it needs.
# CPU machines get the pinned CPU build of torch; on a GPU cluster install a CUDA build of
# torch==2.13.0 into the environment first (see env.yml), and this script keeps it.
#
# No root is needed for encode, train, generate, validate, evaluate and report (pip only).
# The followup stage's open DFT backend, GPAW (extra [dft]), is built from source against Debian
# libraries that apt-get installs (as root, or with sudo -n); ask for it with
#     PCCD_WITH_DFT=1 bash scripts/bootstrap.sh      or      bash scripts/bootstrap.sh --with-dft
# (CI does: .ci/run). Without it the GPAW tests are skipped with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
with_dft=${PCCD_WITH_DFT:-0}
for arg in "$@"; do
  case "$arg" in
    --with-dft) with_dft=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bootstrap.sh: unknown option $arg (use --with-dft or PCCD_WITH_DFT=1 for the GPAW extra)" >&2; exit 2 ;;
  esac
done
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
if [ "$with_dft" = 1 ]; then
  # GPAW is built from source against these Debian libraries, serially (scripts/gpaw_siteconfig.py);
  # PAW datasets come from PyPI gpaw-data.
  gpaw_debs=(libxc-dev libopenblas-dev libfftw3-dev g++)
  if ! dpkg -s "${gpaw_debs[@]}" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo -n); fi
    if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${gpaw_debs[@]}"; }; then
      echo "bootstrap.sh: the DFT extra needs ${gpaw_debs[*]} installed by root (apt-get); ask an administrator," \
           "or leave out --with-dft / PCCD_WITH_DFT=1: everything but the GPAW followup backend works without them" >&2
      exit 1
    fi
  fi
  export GPAW_CONFIG="$PWD/scripts/gpaw_siteconfig.py"
  dft_stamp=.venv/.pccd-dft-installed
  if [ ! -f "$dft_stamp" ] || [ setup.cfg -nt "$dft_stamp" ] || ! python -c "import gpaw, gpaw_data" >/dev/null 2>&1; then
    python -m pip install --quiet -e ".[test,mpi,mlip,eval,dft]"
    touch "$dft_stamp"
  fi
  python -c "import torch, gpaw, pccd_hpc; print(f'pccd_hpc {pccd_hpc.__version__} with torch {torch.__version__}, gpaw {gpaw.__version__} in .venv')"
else
  python -c "import torch, pccd_hpc; print(f'pccd_hpc {pccd_hpc.__version__} with torch {torch.__version__} in .venv (no DFT extra: PCCD_WITH_DFT=1 adds GPAW, needs root for its libraries)')"
fi
