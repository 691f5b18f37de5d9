#!/usr/bin/env bash
# The kill -9 loop: trains a small toy run uninterrupted, then the same run killed with SIGKILL at random moments
# N times (default 6), each followed by `diffusion train --resume` until it finishes, and compares the two runs'
# final checkpoints (model and EMA weights, optimizer state, step) and logs (every field but the throughput).
#
#   tests/tools/kill_resume.sh [N] [WORK_DIR]        (from the repository root, after a Release build)
#
# Prints "identical" and exits 0 when the interrupted run ends bit for bit where the uninterrupted one does.
set -euo pipefail
N=${1:-6}
WORK=${2:-$(mktemp -d /tmp/kill-resume.XXXXXX)}
CLI="dotnet src/Diffusion.Cli/bin/Release/net10.0/diffusion.dll"
STEPS=${STEPS:-6000}
ARGS=(--data "toy:moons?n=2000" --steps "$STEPS" --seed 7 --threads 1 --quiet
      --set model.hidden=32 --set train.batch-size=64 --set train.checkpoint-every=50 --set train.log-every=10
      --set sample.n=64 --set sample.steps=10)
mkdir -p "$WORK"
A="$WORK/uninterrupted"; B="$WORK/killed"
rm -rf "$A" "$B"

t0=$(date +%s.%N)
$CLI train "${ARGS[@]}" --out "$A" 2>"$WORK/a.err"
t1=$(date +%s.%N)
echo "uninterrupted: $STEPS steps in $(python3 -c "print(f'{$t1-$t0:.1f}')") s"

kills=0; resumes=0; restarts=-1   # the first start is not a restart
while :; do
  if [[ -f "$B/checkpoint.ckpt" ]]; then cmd=($CLI train --resume --out "$B" --threads 1 --quiet); resumes=$((resumes+1))
  else cmd=($CLI train "${ARGS[@]}" --out "$B"); restarts=$((restarts+1)); fi
  "${cmd[@]}" 2>>"$WORK/b.err" &
  pid=$!
  if (( kills < N )); then
    # A random moment between 1.5 s (libtorch loading) and 1.5 s + 1/N of the uninterrupted run's time, so that the N
    # kills land before the run can finish (start-up, training, checkpoint writes and final sampling all get hit).
    sleep "$(python3 -c "import random; print(f'{random.uniform(1.5, 1.5 + ($t1 - $t0) / $N):.2f}')")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid"; wait "$pid" 2>/dev/null || true
      kills=$((kills+1))
      step=$(python3 "$(dirname "$0")/ckpt_compare.py" --step "$B/checkpoint.ckpt" 2>/dev/null || echo none)
      echo "kill -9 #$kills: latest checkpoint at step $step"
      continue
    fi
  fi
  if wait "$pid"; then break; fi
  echo "a session failed:"; tail -3 "$WORK/b.err"; exit 1
done
echo "interrupted run: $kills kills, $resumes resumes, $restarts restarts from scratch (killed before the first checkpoint)"
python3 "$(dirname "$0")/ckpt_compare.py" "$A" "$B"
