#!/usr/bin/env bash
# Submits the sampling array, then the merge to run after every task succeeded.
set -euo pipefail
cd "$(dirname "$0")"
array=$(sbatch --parsable sample-array.sbatch)
sbatch --dependency="afterok:${array%%;*}" merge.sbatch
