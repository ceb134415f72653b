#!/usr/bin/env bash
# One step of the followup DFT chain for one candidate (submitted by `followup --cluster slurm`).
#
#   sbatch jobs/followup_step.sh FDIR STEP CANDIDATE_ID
#
# STEP is relax, static, bands, phonon-forces (an array: task i computes displacements
# i, i+K, ...), phonons, finalize (figure + summary of one candidate) or collect (FDIR/summary.json).
# Every step is resumable: a finished, verified step is not redone.
#
# Environment:
#   PCCD_PYTHON  Python with pccd_hpc installed (default: python on PATH)
#   VASP_CMD     VASP backend: command that runs VASP in the current folder (default "srun vasp_std")
#   OMP_NUM_THREADS / OPENBLAS_NUM_THREADS  default 1 (GPAW without MPI is fastest single-threaded)
#SBATCH --job-name=pccd-followup
#SBATCH --output=pccd-followup-%j.out
set -euo pipefail

fdir=${1:?usage: followup_step.sh FDIR STEP CANDIDATE_ID}
step=${2:?usage: followup_step.sh FDIR STEP CANDIDATE_ID}
candidate=${3:?usage: followup_step.sh FDIR STEP CANDIDATE_ID}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
args=(--out "$fdir" --step "$step" --candidate "$candidate")
if [[ -n "${SLURM_ARRAY_TASK_ID:-}" ]]; then
    args+=(--task-index $((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0})) --num-tasks "${SLURM_ARRAY_TASK_COUNT:-1}")
fi
echo "$(date -Is) followup $step $candidate on $(hostname)"
exec "${PCCD_PYTHON:-python}" -m pccd_hpc.launch followup "${args[@]}"
