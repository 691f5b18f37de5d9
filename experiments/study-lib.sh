# Shared by experiments/study-diagnostics.sh and study-grids.sh (sourced, not run): their STUDY_DIR OUT_DIR
# arguments, the CPU settings for a machine shared with study workers, and the final checkpoint of a variant's
# seed-0 job (each job keeps copies in STUDY_DIR/work/<variant>-seed<k>/checkpoints/step-NNNNNNN.ckpt).

# study_args SCRIPT "$@": sets study and out, or exits 2 with a one-line error.
study_args() {
  local script="$1"; shift
  if [ $# -ne 2 ]; then
    echo "usage: $script STUDY_DIR OUT_DIR" >&2
    exit 2
  fi
  study="$1"
  out="$2"
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  if [ ! -d "$study/work" ]; then
    echo "error: $study/work not found: expected the --out folder of a diffusion study" >&2
    exit 2
  fi
  mkdir -p "$out"
}

# final_checkpoint VARIANT: the highest-step checkpoint of VARIANT-seed0, or nothing.
final_checkpoint() {
  local dir="$study/work/$1-seed0/checkpoints"
  [ -d "$dir" ] || return 0
  find "$dir" -maxdepth 1 -name 'step-*.ckpt' | sort | tail -n 1
}
