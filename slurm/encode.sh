#!/bin/bash
# Encode a structure set into HDF5 shards with MPI ranks (one shard per rank at a time).
# Edit the #SBATCH lines for your site; submit with:
#   sbatch slurm/encode.sh INPUT.csv OUT_DIR [extra encode options]
# Re-submitting the same command resumes: finished shards are verified and kept.
#SBATCH --job-name=pccd-encode
#SBATCH --nodes=1
#SBATCH --ntasks=2
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --output=pccd-encode-%j.out
set -euo pipefail
if [ "$#" -lt 2 ]; then
  echo "usage: sbatch slurm/encode.sh INPUT OUT_DIR [encode options]" >&2
  exit 2
fi
input=$1; out=$2; shift 2
export OMP_NUM_THREADS=1
# srun starts one MPI rank per task (PMI-2: works with MPICH, also the PyPI mpich wheel).
srun --mpi=pmi2 python -m pccd_hpc.launch encode --input "$input" --out "$out" "$@"
