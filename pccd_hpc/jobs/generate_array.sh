#!/bin/bash
# One generation task per array element, for users who prefer plain sbatch to submitit.
#   python -m pccd_hpc.launch generate --n 10000 --elements paper --out GEN --array-size 10 --plan-only
#   sbatch --array=0-9 jobs/generate_array.sh GEN
#   python -m pccd_hpc.launch generate --n 10000 --elements paper --out GEN --array-size 10   # merge
# A requeued or re-submitted task skips its finished batches; a finished task does nothing.
#SBATCH --job-name=pccd-generate
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=pccd-generate-%A_%a.out
set -euo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: sbatch --array=0-K jobs/generate_array.sh GEN_DIR" >&2
  exit 2
fi
: "${SLURM_ARRAY_TASK_ID:?run this script as an array job (sbatch --array=...)}"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
echo "task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)"
exec python -m pccd_hpc.launch generate-task --out "$1" --task "${SLURM_ARRAY_TASK_ID}"
