#!/usr/bin/env bash
# Samples at 10 steps, side by side, for a study of issue 12:
#
#   experiments/study-grids.sh STUDY_DIR OUT_DIR [PLAN]
#
# PLAN is experiments/study-fashion.toml (default) or experiments/study-grid.toml. For each variant whose seed-0 job
# has its final checkpoint (the plan's `steps`) in STUDY_DIR/work/<variant>-seed0/checkpoints/, draws samples with the
# plans' ddim-10 sampler (uniform spacing, η = 0) and the plans' evaluation seed (1), so every picture starts from the
# same x_T, and writes OUT_DIR/<variant>.png: a grid of 8 × 8 images, or for 2-D data a scatter of 2 000 points over
# the training data. A picture that exists is kept (delete it to redo). Cheap: 10 network evaluations per sample.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=study-lib.sh
source "$root/experiments/study-lib.sh"
plan="${3:-$root/experiments/study-fashion.toml}"
study_args "$0" "${@:1:2}"
[ -f "$plan" ] || { echo "error: $plan not found: expected a study plan" >&2; exit 2; }
final="$(sed -n 's/^steps *= *\([0-9]*\).*/\1/p' "$plan" | head -n 1)"
[ -n "$final" ] || { echo "error: $plan: no 'steps = N' line" >&2; exit 2; }
n=64
grep -q '^config *= *"toy"' "$plan" && n=2000
for job in "$study"/work/*-seed0; do
  [ -d "$job" ] || continue
  variant="$(basename "$job")"; variant="${variant%-seed0}"
  ckpt="$(final_checkpoint "$variant")"
  [ -n "$ckpt" ] || { echo "$variant: no checkpoints yet, skipped"; continue; }
  case "$ckpt" in *"step-$(printf '%07d' "$final").ckpt") ;; *) echo "$variant: not trained to the end ($final steps) yet, skipped"; continue ;; esac
  [ -f "$out/$variant.png" ] && { echo "$variant: $out/$variant.png exists, kept"; continue; }
  "$root/diffusion" sample --checkpoint "$ckpt" --sampler ddim --steps 10 --spacing uniform --eta 0 \
    --n "$n" --seed 1 --out "$out/$variant.png" --threads 1 --quiet
  echo "$variant: $out/$variant.png"
done
