#!/bin/bash
# Train PCCD with torch.distributed under plain sbatch: one process per task (per GPU on GPU nodes).
#
#   sbatch slurm/train.sh                      # bundled sample -> runs/sample-shards, run in runs/train
#   sbatch slurm/train.sh DATA_DIR RUN_DIR [extra `train` options, e.g. --max-steps 20000]
#   PRESET=paper sbatch --nodes=4 --ntasks-per-node=4 --gpus-per-node=4 slurm/train.sh data/ runs/paper
#
# Edit the #SBATCH lines (or override them on the sbatch command line). Rank, world size and the
# master address (first host of the allocation) come from SLURM; rank 0 writes RUN_DIR. Near the
# time limit SLURM signals this script (B:USR1), which requeues the job; training resumes from
# the highest complete RUN_DIR/checkpoints/step-N/. As shipped it runs the CPU preset with 2 tasks on one node.
#SBATCH --job-name=pccd-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --cpus-per-task=1
##SBATCH --gpus-per-node=2
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

PRESET="${PRESET:-cpu}"
PYTHON="${PYTHON:-python}"
if [ "$#" -ge 2 ]; then
    DATA="$1"; RUN="$2"; shift 2
elif [ "$#" -eq 0 ]; then
    # No arguments: the embedded default, the structure sample bundled with the package
    # (encoding is idempotent: a re-run or requeue keeps the finished shards).
    DATA=runs/sample-shards; RUN=runs/train
    "$PYTHON" -m pccd_hpc.launch encode --out "$DATA"
else
    echo "usage: sbatch slurm/train.sh [DATA_DIR RUN_DIR [train options]]" >&2
    exit 2
fi

MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
MASTER_PORT="${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}"
export MASTER_ADDR MASTER_PORT
echo "job $SLURM_JOB_ID: ${SLURM_JOB_NUM_NODES} node(s), ${SLURM_NTASKS} task(s), master ${MASTER_ADDR}:${MASTER_PORT}"

requeue() {
    echo "time limit near: requeueing job $SLURM_JOB_ID (resumes from the newest complete $RUN/checkpoints/step-N/)"
    scontrol requeue "$SLURM_JOB_ID"
}
trap requeue USR1

# srun runs in the background so that the shell can handle the signal while training runs.
srun --kill-on-bad-exit=1 "$PYTHON" -m pccd_hpc.launch train --cluster local \
    --data "$DATA" --out "$RUN" --preset "$PRESET" "$@" &
wait $!
