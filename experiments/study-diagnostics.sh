#!/usr/bin/env bash
# Each remedy's own diagnostic, with the baseline overlaid, on a finished Fashion-MNIST study (issue 12):
#
#   experiments/study-diagnostics.sh STUDY_DIR OUT_DIR
#
# STUDY_DIR is the --out of `diffusion study experiments/study-fashion.toml`; each job keeps copies of its
# checkpoints in STUDY_DIR/work/<variant>-seed<k>/checkpoints/step-NNNNNNN.ckpt (src/Diffusion/Study/StudyFolder.cs).
# Every diagnostic uses seed 0's final checkpoint (the highest step) of each variant:
#
#   exposure-bias      input-perturbation vs baseline
#   x0-bias            debiased, p2, min-snr vs baseline
#   lipschitz          etsdm-n5 vs baseline
#   error-propagation  consistency vs baseline, --bandwidth nearest (the local scale of q(x_t))
#   mixture-steps      smd vs baseline: FID/KID/precision/recall (classifier features, against the test split) of
#                      STEPS_N samples (default 1000) drawn with DDPM at 1000, 100, 20 and 10 backward steps
#
# into OUT_DIR/<diagnostic>/. A diagnostic whose OUT_DIR/<diagnostic>/<diagnostic>.json exists is skipped (delete
# it to redo); a variant whose checkpoint is missing is left out (with a note), and a diagnostic left with the
# baseline alone, or without it, is skipped. Environment: N (examples/chains per model, default 128), STEPS
# (backward steps of the chains, default 100), PERMUTATIONS (default 100), STEPS_N (samples per step count of
# mixture-steps, default 1000: FID needs far more than 128), THREADS (default 1). mixture-steps is the costly one
# (≈ 1 130 network evaluations per sample: ≈ 80 min per model on one core shared with a study worker, at STEPS_N = 1000).
# CPU discipline on a shared machine: OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 (set below unless given).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=study-lib.sh
source "$root/experiments/study-lib.sh"
study_args "$0" "$@"
N="${N:-128}"
STEPS="${STEPS:-100}"
STEPS_N="${STEPS_N:-1000}"
PERMUTATIONS="${PERMUTATIONS:-100}"
THREADS="${THREADS:-1}"

# run_diagnostic NAME [extra flags …] -- VARIANT …   (the first variant is the baseline)
run_diagnostic() {
  local name="$1"; shift
  local extra=() n="$N"
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    if [ "$1" = "--n" ]; then n="$2"; shift 2; continue; fi   # a diagnostic's own sample count
    extra+=("$1"); shift
  done
  shift   # the --
  local dir="$out/$name"
  if [ -f "$dir/$name.json" ]; then
    echo "$name: $dir/$name.json exists, skipped"
    return 0
  fi
  local models=() found=0 variant ckpt
  for variant in "$@"; do
    ckpt="$(final_checkpoint "$variant")"
    if [ -z "$ckpt" ]; then
      echo "$name: no checkpoint for $variant-seed0 in $study/work, left out" >&2
      [ "$variant" = "$1" ] && { echo "$name: no baseline, skipped" >&2; return 0; }
      continue
    fi
    models+=(--checkpoint "$ckpt" --label "$variant")
    found=$((found + 1))
  done
  if [ "$found" -lt 2 ]; then
    echo "$name: nothing to compare with the baseline, skipped" >&2
    return 0
  fi
  echo "$name: $found models → $dir"
  "$root/diffusion" diagnose "$name" "${models[@]}" --out "$dir" --n "$n" --steps "$STEPS" --threads "$THREADS" \
    ${extra[@]+"${extra[@]}"}
}

run_diagnostic exposure-bias -- baseline input-perturbation
run_diagnostic x0-bias -- baseline debiased p2 min-snr
run_diagnostic lipschitz -- baseline etsdm-n5
run_diagnostic error-propagation --bandwidth nearest --permutations "$PERMUTATIONS" -- baseline consistency
run_diagnostic mixture-steps --mixture-steps 1000,100,20,10 --n "$STEPS_N" -- baseline smd
echo "done: $out"
