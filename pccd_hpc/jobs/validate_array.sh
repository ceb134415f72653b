#!/bin/bash
# Validate as a SLURM array: each task relaxes its chunk (every K-th candidate and reference).
#   sbatch --array=0-$((K-1)) jobs/validate_array.sh --input GEN --out VDIR [validate options] --array-size K --no-finalize
#   sbatch --dependency=afterany:ARRAY_ID jobs/validate_array.sh --input GEN --out VDIR [same options] --finalize-only
# (`python -m pccd_hpc.launch validate ... --cluster slurm` submits both.) Records are written one
# per structure, so a requeued or re-submitted task skips what it already finished.
#SBATCH --job-name=pccd-validate
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --time=02:00:00
#SBATCH --output=pccd-validate-%A_%a.out
set -euo pipefail
if [ "$#" -lt 4 ]; then
  echo "usage: sbatch [--array=0-K] jobs/validate_array.sh --input IN --out VDIR [validate options]" >&2
  exit 2
fi
# One torch thread per worker process; workers = CPUs of this task.
export OMP_NUM_THREADS=1
echo "validate task ${SLURM_ARRAY_TASK_ID:-single} of job ${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-?}} on $(hostname)"
exec python -m pccd_hpc.launch validate "$@"   # --workers defaults to SLURM_CPUS_PER_TASK
