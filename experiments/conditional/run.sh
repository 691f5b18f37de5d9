#!/usr/bin/env bash
# Class-conditional Fashion-MNIST with classifier-free guidance: the numbers of docs/results/conditional.md.
#
#   experiments/conditional/run.sh [OUT_DIR] [extra `diffusion train` flags …]
#
# 1. trains the demo model as it was when docs/results/conditional.md was measured (configs/demo.toml with dropout 0.1,
#    800 steps, no guidance in its own samples) with model.num-classes=10 (label dropout 0.1) into
#    OUT_DIR/run — or reuses OUT_DIR/run when it already holds a finished checkpoint;
# 2. for each guidance weight w in GUIDANCES (default "0 1 3"; w = 0 is the conditional model unguided,
#    ε̂ = (1 + w)·ε̂(x, c) − w·ε̂(x, ∅)), samples N (default 1000) images, N/10 of each class, DDIM 20 steps, seed SEED
#    (default 1), into OUT_DIR/w<w>.npy (+ .labels.npy);
# 3. evaluates each set against the Fashion-MNIST test split in the project's classifier features
#    (classifier:fashion-mnist, trained on first use and cached): FID and precision/recall over all samples,
#    per-class FID and the classifier's accuracy (fraction classified as the class asked for) → OUT_DIR/eval-w<w>.json;
# 4. draws a 10×8 grid, a row per class, at w = GRID_W (default 3) → OUT_DIR/grid-w<GRID_W>.png;
# 5. writes every number into OUT_DIR/conditional.json.
#
# A quick check that it works end to end (a few minutes, most of it the classifier's first training):
#   N=20 experiments/conditional/run.sh /tmp/cond-check --set train.steps=5
# CPU discipline on a shared machine: OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 (set below unless given).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/experiments/conditional/out}"
[ $# -gt 0 ] && shift
N="${N:-1000}"
SEED="${SEED:-1}"
GUIDANCES="${GUIDANCES:-0 1 3}"
GRID_W="${GRID_W:-3}"
STEPS="${SAMPLE_STEPS:-20}"
THREADS="${THREADS:-1}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-$THREADS}"
diffusion="$root/diffusion"
mkdir -p "$out"
run="$out/run"

if [ -f "$run/checkpoint.ckpt" ] && [ -f "$run/metrics.json" ]; then
  echo "conditional: reusing the trained run in $run (delete it to train afresh)" >&2
else
  "$diffusion" train --config "$root/configs/demo.toml" --set model.num-classes=10 \
    --set model.dropout=0.1 --set train.steps=800 --set sample.n=64 --set sample.guidance=0 --out "$run" --force \
    --threads "$THREADS" --quiet "$@"
fi

for w in $GUIDANCES; do
  "$diffusion" sample --checkpoint "$run" --out "$out/w$w.npy" --n "$N" --class all --guidance "$w" \
    --sampler ddim --steps "$STEPS" --seed "$SEED" --threads "$THREADS" --quiet
  "$diffusion" eval --samples "$out/w$w.npy" --reference fashion-mnist:test --features classifier:fashion-mnist \
    --metrics fid,pr --labels --format json --threads "$THREADS" --quiet > "$out/eval-w$w.json"
done

"$diffusion" sample --checkpoint "$run" --out "$out/grid-w$GRID_W.png" --n 80 --class all --guidance "$GRID_W" \
  --sampler ddim --steps "$STEPS" --seed "$SEED" --threads "$THREADS" --quiet

python3 - "$out" "$N" "$SEED" "$STEPS" "$GRID_W" $GUIDANCES <<'PY'
import json, os, sys
out, n, seed, steps, grid_w, ws = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6:]
metrics = json.load(open(os.path.join(out, "run", "metrics.json")))
result = {
    "model": "configs/demo.toml + model.num-classes=10 (label dropout 0.1)",
    "training": {k: metrics[k] for k in ("steps", "batch_size", "parameters", "train_seconds_total", "final_loss") if k in metrics},
    "sampling": {"sampler": "ddim", "steps": steps, "n": n, "classes": "all (n/10 each)", "seed": seed,
                 "guidance_convention": "eps = (1 + w)·eps(x, c) − w·eps(x, null); diffusers' guidance_scale = 1 + w"},
    "reference": "fashion-mnist:test (10 000), classifier:fashion-mnist features",
    "grid": f"grid-w{grid_w}.png (10 rows, one per class, 8 columns)",
    "by_guidance": [],
}
for w in ws:
    e = json.load(open(os.path.join(out, f"eval-w{w}.json")))
    result["by_guidance"].append({
        "w": float(w), "fid": e.get("fid"), "precision": e.get("precision"), "recall": e.get("recall"),
        "classifier_accuracy": e.get("classifier_accuracy"),
        "per_class": [{k: c[k] for k in ("class", "name", "n", "fid", "accuracy")} for c in e["per_class"]],
    })
path = os.path.join(out, "conditional.json")
json.dump(result, open(path, "w"), indent=2)
print(f"conditional: {path}", file=sys.stderr)
for r in result["by_guidance"]:
    print(f"  w = {r['w']:g}: FID {r['fid']:.2f}, classifier accuracy {r['classifier_accuracy']:.3f}", file=sys.stderr)
PY
