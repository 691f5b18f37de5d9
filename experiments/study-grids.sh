#!/usr/bin/env bash
# Sample grids at 10 steps, side by side, for the Fashion-MNIST study (issue 12):
#
#   experiments/study-grids.sh STUDY_DIR OUT_DIR
#
# For each variant of experiments/study-fashion.toml whose seed-0 job has a final checkpoint in
# STUDY_DIR/work/<variant>-seed0/checkpoints/, draws 64 samples with the plan's ddim-10 sampler (uniform spacing,
# η = 0) and the plan's evaluation seed (1), so every grid starts from the same x_T, and writes OUT_DIR/<variant>.png
# (a grid of 8 × 8). A grid that exists is kept (delete it to redo). Cheap: 640 network evaluations per variant.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=study-lib.sh
source "$root/experiments/study-lib.sh"
study_args "$0" "$@"
for variant in baseline input-perturbation debiased p2 min-snr etsdm-n5 etsdm-n2 etsdm-n10 etsdm-n20 consistency smd all-five; do
  ckpt="$(final_checkpoint "$variant")"
  [ -n "$ckpt" ] || { echo "$variant: no checkpoints yet, skipped"; continue; }
  case "$ckpt" in *step-0002000.ckpt) ;; *) echo "$variant: not trained to the end yet, skipped"; continue ;; esac
  [ -f "$out/$variant.png" ] && { echo "$variant: $out/$variant.png exists, kept"; continue; }
  "$root/diffusion" sample --checkpoint "$ckpt" --sampler ddim --steps 10 --spacing uniform --eta 0 \
    --n 64 --seed 1 --out "$out/$variant.png" --threads 1 --quiet
  echo "$variant: $out/$variant.png"
done
