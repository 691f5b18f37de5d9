#!/usr/bin/env bash
# Paired peer benchmark: the demo UNet trained in PyTorch (Debian's python3-torch, bench/peer/unet_peer.py) and in
# this toolkit (`diffusion bench --configs demo`), alternating ROUNDS rounds in one command, same threads.
#
#   scripts/bench_peer.sh [ROUNDS=5] [STEPS=10]
#
# Environment: THREADS (default 2), SAMPLE_STEPS (DDIM steps of the sampling measurement, default 10),
# OUT (default bench/peer-results.json), PYTHON (an interpreter with torch, default /usr/bin/python3),
# PEER_ARGS (extra arguments for unet_peer.py, e.g. --channels-last).
# Writes OUT (every round of both builds, the builds' versions, machine, date) and prints the summary table.
# Run it on a quiet machine: other jobs on the cores move both builds' numbers.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
STEPS=${2:-10}
THREADS=${THREADS:-2}
SAMPLE_STEPS=${SAMPLE_STEPS:-10}
OUT=${OUT:-bench/peer-results.json}
PY=${PYTHON:-/usr/bin/python3}
DLL=src/Diffusion.Cli/bin/Release/net10.0/diffusion.dll
say() { printf 'bench-peer: %s\n' "$*" >&2; }
for v in ROUNDS STEPS THREADS SAMPLE_STEPS; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then say "error: $v must be a positive integer, got '${!v}'"; exit 2; fi
done

# ---- PyTorch: Debian's python3-torch ----
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
if "$PY" -c 'import torch' 2>/dev/null; then
  say "PyTorch found ($PY)"
elif command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's python3-torch (the PyTorch peer)"
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-torch; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q python3-torch
  fi
  "$PY" -c 'import torch' || { say "error: $PY still cannot import torch after installing python3-torch"; exit 1; }
else
  say "error: $PY cannot import torch and there is no apt-get; set PYTHON to an interpreter with PyTorch"; exit 1
fi

# ---- the toolkit (built by `make setup`) and its libtorch ----
if [ ! -f "$DLL" ]; then say "error: $DLL is missing; run 'make setup' (or 'make build') first"; exit 1; fi
SO=$(dirname "$DLL")/runtimes/linux-x64/native/libtorch_cpu.so
[ -f "$SO" ] || SO=$(ls -d "$HOME"/.nuget/packages/libtorch-cpu-linux-x64/*/runtimes/linux-x64/native/libtorch_cpu.so 2>/dev/null | tail -n 1 || true)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
LIBTORCH_CONFIG='{}'
if [ -n "$SO" ] && [ -f "$SO" ]; then
  LIBTORCH_CONFIG=$("$PY" bench/peer/unet_peer.py --libtorch-config "$SO" 2>/dev/null) || LIBTORCH_CONFIG='{}'
fi
printf '%s\n' "$LIBTORCH_CONFIG" >"$TMP/libtorch.json"
# Debian's packages behind the peer (torch.__version__ says 1.13.0a0 for Debian's 1.13.1).
{ dpkg-query -W -f='${Package} ${Version}\n' python3-torch libdnnl2 libblas3 libopenblas0 libopenblas0-pthread 2>/dev/null || true; } |
  awk 'NF == 2' >"$TMP/debs" || true
cat /proc/loadavg >"$TMP/load_start" 2>/dev/null || true

export OMP_WAIT_POLICY=PASSIVE
say "$ROUNDS round(s) of $STEPS timed training steps (+2 warm-up) and $SAMPLE_STEPS sampling steps, $THREADS threads, OMP_WAIT_POLICY=PASSIVE"
for ((i = 1; i <= ROUNDS; i++)); do
  say "round $i/$ROUNDS: PyTorch"
  # shellcheck disable=SC2086
  "$PY" bench/peer/unet_peer.py --threads "$THREADS" --train-steps "$STEPS" --sample-steps "$SAMPLE_STEPS" ${PEER_ARGS:-} >"$TMP/pytorch_$i.json"
  say "round $i/$ROUNDS: toolkit"
  ok=0
  for attempt in 1 2 3; do
    if dotnet "$DLL" bench --configs demo --precision float32,bf16-mixed --train-steps "$STEPS" --sample-steps "$SAMPLE_STEPS" \
         --threads "$THREADS" --out "$TMP/toolkit_$i.json" >&2; then ok=1; break; fi
    say "the toolkit's bench failed (attempt $attempt/3; a build in progress?); retrying in 60 s"
    sleep 60
  done
  [ "$ok" = 1 ] || { say "error: the toolkit's bench failed three times"; exit 1; }
done
cat /proc/loadavg >"$TMP/load_end" 2>/dev/null || true

"$PY" - "$TMP" "$ROUNDS" "$OUT" "$THREADS" "$STEPS" "$SAMPLE_STEPS" <<'PY'
import json, os, platform, statistics, sys, time
tmp, rounds, out, threads, steps, sample_steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])

def load(name):
    with open(os.path.join(tmp, name)) as f:
        return json.loads(f.read().strip().splitlines()[-1] if name.startswith("pytorch") else f.read())

def read(name):
    try:
        with open(os.path.join(tmp, name)) as f:
            return f.read().strip()
    except OSError:
        return None

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"

rows = []
for i in range(1, rounds + 1):
    pt, tk = load(f"pytorch_{i}.json"), load(f"toolkit_{i}.json")
    rows.append({"round": i, "pytorch": pt, "toolkit": tk})

def pt_result(r, prec):
    return next(x for x in r["pytorch"]["results"] if x["precision"] == prec)

def tk_result(r, prec):
    return next(x for x in r["toolkit"]["results"] if x["config"] == "demo" and x["precision"] == prec)

def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values), "values": values}

series = {
    "PyTorch float32":        lambda r: pt_result(r, "float32"),
    "PyTorch bf16 autocast":  lambda r: pt_result(r, "bf16-autocast"),
    "toolkit float32":        lambda r: tk_result(r, "float32"),
    "toolkit bf16-mixed":     lambda r: tk_result(r, "bf16-mixed"),
}
train = {k: stats([f(r)["train_samples_per_second"] for r in rows]) for k, f in series.items()}
sample = {k: stats([f(r).get("sample_evaluations_per_second") for r in rows]) for k, f in series.items()}
gflops = {k: stats([f(r).get("train_gflops") for r in rows]) for k, f in series.items()}

def best_pt(r):
    return max(pt_result(r, "float32")["train_samples_per_second"], pt_result(r, "bf16-autocast")["train_samples_per_second"])

ratios = {
    "toolkit bf16-mixed / toolkit float32": stats([tk_result(r, "bf16-mixed")["train_samples_per_second"] / tk_result(r, "float32")["train_samples_per_second"] for r in rows]),
    "toolkit bf16-mixed / best PyTorch": stats([tk_result(r, "bf16-mixed")["train_samples_per_second"] / best_pt(r) for r in rows]),
    "toolkit float32 / PyTorch float32": stats([tk_result(r, "float32")["train_samples_per_second"] / pt_result(r, "float32")["train_samples_per_second"] for r in rows]),
    "PyTorch bf16 autocast / PyTorch float32": stats([pt_result(r, "bf16-autocast")["train_samples_per_second"] / pt_result(r, "float32")["train_samples_per_second"] for r in rows]),
}
peak = [(tk_result(r, "bf16-mixed")["train_gflops"], r["toolkit"].get("matmul_2048_float32_gflops")) for r in rows]
peak_exceeded = sum(1 for g, m in peak if m is not None and g > m)

# The two networks must be the same: parameters and forward FLOPs per example.
first = rows[0]
same = {
    "parameters": (first["pytorch"]["parameters"], tk_result(first, "float32")["parameters"]),
    "forward_gflop_per_example": (first["pytorch"]["forward_gflop_per_example"], tk_result(first, "float32")["forward_gflop_per_example"]),
}
mismatch = [k for k, (a, b) in same.items() if abs(a - b) > 1e-3 * max(abs(a), abs(b))]

pt0, tk0 = first["pytorch"], first["toolkit"]
libtorch = json.loads(read("libtorch.json") or "{}")
builds = {
    "pytorch": {**{k: pt0.get(k) for k in ("torch", "torch_build", "python", "blas", "blas_library", "onednn", "mkldnn_available",
                                           "mkldnn_bf16_supported", "cpu_capability")},
                "debian_packages": (read("debs") or "").splitlines()},
    "toolkit": {"libtorch": tk0.get("libtorch"), "cpu_bf16": tk0.get("cpu_bf16"),
                "blas": libtorch.get("blas"), "mkl": libtorch.get("mkl"),
                "onednn": libtorch.get("onednn") or "not exposed", "cpu_capability": libtorch.get("cpu_capability"),
                "libtorch_so": libtorch.get("library")},
}
doc = {
    "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    "machine": f"{platform.platform()}, {cpu_model()}, {os.cpu_count()} logical CPUs",
    "load_average_start": read("load_start"), "load_average_end": read("load_end"),
    "threads": threads, "train_steps_timed": steps, "sample_steps": sample_steps, "rounds": rounds,
    "order": "each round: PyTorch (float32, then bf16 autocast), then the toolkit (float32, then bf16-mixed)",
    "builds": builds,
    "same_network": {k: {"pytorch": a, "toolkit": b} for k, (a, b) in same.items()},
    "summary": {"train_samples_per_second": train, "sample_evaluations_per_second": sample, "train_gflops": gflops,
                "ratios_train": ratios,
                "toolkit_bf16_train_gflops_exceeds_float32_matmul_peak": {"rounds": peak_exceeded, "of": rounds,
                    "per_round": [{"bf16_train_gflops": g, "matmul_2048_float32_gflops": m} for g, m in peak]}},
    "per_round": rows,
}
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
with open(out + ".tmp", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
os.replace(out + ".tmp", out)

def pm(s, digits=1):
    if s is None:
        return "—"
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}  ({s['min']:.{digits}f}–{s['max']:.{digits}f})"

b = builds
print()
print(f"PyTorch {b['pytorch']['torch']} (Python {b['pytorch']['python']}): BLAS {b['pytorch']['blas']} ({b['pytorch']['blas_library']}), "
      f"{b['pytorch']['onednn']}, ATen CPU capability {b['pytorch']['cpu_capability']}; {', '.join(b['pytorch']['debian_packages'])}")
print(f"toolkit: libtorch {b['toolkit']['libtorch']}: BLAS {b['toolkit']['blas']} ({b['toolkit']['mkl']}), {b['toolkit']['onednn']}, "
      f"ATen CPU capability {b['toolkit']['cpu_capability']}; CPU bf16: {b['toolkit']['cpu_bf16']}")
print(f"{doc['machine']}; {threads} threads; {rounds} round(s) × {steps} timed steps; load average {doc['load_average_start']} → {doc['load_average_end']}")
print(f"same network: parameters {same['parameters'][0]:,} vs {same['parameters'][1]:,}, "
      f"forward GFLOP/example {same['forward_gflop_per_example'][0]} vs {same['forward_gflop_per_example'][1]}")
print()
print(f"{'':24} {'train samples/s, mean ± sd (min–max)':40} {'train GFLOP/s':>14} {'sampling evals/s':>17}")
for k in series:
    print(f"{k:24} {pm(train[k]):40} {gflops[k]['mean'] if gflops[k] else float('nan'):14.1f} "
          f"{(sample[k]['mean'] if sample[k] else float('nan')):17.1f}")
print()
print("ratios of train samples/s (per round, then mean ± sd, min–max):")
for k, s in ratios.items():
    print(f"  {k:42} {pm(s, 2)}")
mm = [m for _, m in peak if m is not None]
print(f"toolkit bf16-mixed train GFLOP/s above the float32 matmul peak of its run: {peak_exceeded}/{rounds} rounds "
      f"(bf16 train {statistics.fmean(g for g, _ in peak):.1f} vs matmul {statistics.fmean(mm) if mm else float('nan'):.1f} GFLOP/s)")
print(f"wrote {out}")
if mismatch:
    print(f"ERROR: the two networks differ in {', '.join(mismatch)}: {same}", file=sys.stderr)
    sys.exit(1)
PY
