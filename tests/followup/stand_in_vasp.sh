#!/usr/bin/env bash
# Stand-in for VASP in tests: copies a real vasprun.xml (path in STANDIN_VASPRUN, e.g. one of
# ../shared/data/vasp) into the current folder, like a finished VASP run; fails (exit 3) without one.
# Appends the folder it ran in to STANDIN_LOG when set.
set -euo pipefail
src=${STANDIN_VASPRUN:-}
if [[ -z "$src" || ! -f "$src" ]]; then
    echo "stand-in VASP: no vasprun to copy (STANDIN_VASPRUN=$src)" >&2
    exit 3
fi
cp "$src" vasprun.xml.gz
if [[ -f POSCAR ]]; then cp POSCAR CONTCAR; fi
if [[ -n "${STANDIN_LOG:-}" ]]; then echo "$PWD" >> "$STANDIN_LOG"; fi
