#!/usr/bin/env bash
# SLURM array over VASP candidate folders written by `pccd validate --backend vasp`.
#
#   sbatch --array=0-$((K-1)) jobs/vasp_array.sh VDIR/vasp/pending.txt
#
# Task i runs the folders on lines i, i+K, i+2K, ... of the list (K = array size). Per folder:
# relax/ (MPRelaxSet), then static/ (MPStaticSet) from the relaxed CONTCAR; writes DONE, or
# FAILED with the exit code. Re-running skips folders that have DONE or FAILED.
#
# Environment:
#   VASP_CMD            command that runs VASP in the current folder (default: "srun vasp_std");
#                       split on whitespace, never evaluated by a shell
#   VASP_MAX_RESTARTS   custodian-style restarts of an unfinished relaxation from CONTCAR (default 0)
#SBATCH --job-name=pccd-vasp
#SBATCH --output=pccd-vasp-%A_%a.out
set -euo pipefail

list=${1:?usage: vasp_array.sh PENDING_LIST}
task=${SLURM_ARRAY_TASK_ID:-0}
task_min=${SLURM_ARRAY_TASK_MIN:-0}
count=${SLURM_ARRAY_TASK_COUNT:-1}
index=$((task - task_min))
read -r -a vasp_cmd <<< "${VASP_CMD:-srun vasp_std}"
max_restarts=${VASP_MAX_RESTARTS:-0}

relax_finished() {
    [[ -f OUTCAR ]] && grep -q "reached required accuracy" OUTCAR
}

run_folder() {
    local folder=$1 rc=0 attempt=0
    [[ -f "$folder/DONE" || -f "$folder/FAILED" ]] && return 0
    echo "$(date -Is) task $index: $folder"
    cd "$folder/relax"
    while :; do
        "${vasp_cmd[@]}" > vasp.out 2>&1 || rc=$?
        if (( rc != 0 )); then echo "relax: VASP exited with code $rc" > ../FAILED; return 0; fi
        if relax_finished || (( attempt >= max_restarts )); then break; fi
        attempt=$((attempt + 1))
        echo "relax not finished; restart $attempt from CONTCAR"
        [[ -s CONTCAR ]] && cp CONTCAR POSCAR
    done
    if [[ -s CONTCAR ]]; then cp CONTCAR ../static/POSCAR; fi
    cd ../static
    "${vasp_cmd[@]}" > vasp.out 2>&1 || rc=$?
    if (( rc != 0 )); then echo "static: VASP exited with code $rc" > ../FAILED; return 0; fi
    date -Is > ../DONE
}

mapfile -t folders < <(awk -v i="$index" -v k="$count" '(NR - 1) % k == i' "$list")
for folder in "${folders[@]}"; do
    [[ -n "$folder" ]] || continue
    ( run_folder "$folder" ) || echo "$(date -Is) task $index: $folder: job script error (exit $?)" >&2
done
