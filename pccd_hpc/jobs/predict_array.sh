#!/bin/bash
# One predict task per array element (a share of the formulas), for users who prefer plain sbatch to submitit.
#   python -m pccd_hpc.launch predict --compositions formulas.txt --k 20 --out PRED --array-size 8 --plan-only
#   sbatch --array=0-7 jobs/predict_array.sh PRED
#   python -m pccd_hpc.launch predict --compositions formulas.txt --k 20 --out PRED --array-size 8   # verify and merge
# A re-submitted task skips its finished formulas (verified by sha256).
#SBATCH --job-name=pccd-predict
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --output=pccd-predict-%A_%a.out
set -euo pipefail
if [ "$#" -ne 1 ]; then
  echo "usage: sbatch --array=0-K jobs/predict_array.sh PRED_DIR" >&2
  exit 2
fi
: "${SLURM_ARRAY_TASK_ID:?run this script as an array job (sbatch --array=...)}"
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
echo "task ${SLURM_ARRAY_TASK_ID} of job ${SLURM_ARRAY_JOB_ID:-?} on $(hostname)"
exec python -m pccd_hpc.launch predict-task --out "$1" --task "${SLURM_ARRAY_TASK_ID}"
