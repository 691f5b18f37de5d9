#!/usr/bin/env bash
# Packs the library (Diffusion.Core) and the command-line tool (Diffusion.Cli), installs the tool from the local
# package folder into a temporary tool path, and runs it: `diffusion --help`, a 20-step toy training and a sample.
# Needs a Release build (make setup). Offline: the tool package carries its dependencies; other sources are ignored
# when unreachable. Run by .ci/run after the test suite; about a minute (the tool package holds libtorch, ~200 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' src/Diffusion.Cli/Diffusion.Cli.csproj | head -n 1)
dotnet pack Diffusion.slnx -c Release --no-build -nologo -v q -o "$tmp/packages" >/dev/null
for p in "Diffusion.Core.$version.nupkg" "Diffusion.Cli.$version.nupkg"; do
  [ -s "$tmp/packages/$p" ] || { echo "package: $p was not produced" >&2; exit 1; }
done
dotnet tool install --tool-path "$tmp/tool" --add-source "$tmp/packages" --ignore-failed-sources Diffusion.Cli --version "$version" >/dev/null
"$tmp/tool/diffusion" --help | grep -q "usage: diffusion" || { echo "package: diffusion --help did not print the usage" >&2; exit 1; }
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
"$tmp/tool/diffusion" train --data 'toy:moons?n=500' --steps 20 --out "$tmp/run" --quiet \
  --set model.hidden=32 --set sample.n=16 --set sample.steps=5
[ -s "$tmp/run/checkpoint.ckpt" ] || { echo "package: the installed tool's training wrote no checkpoint" >&2; exit 1; }
"$tmp/tool/diffusion" sample --checkpoint "$tmp/run" --n 8 --steps 5 --out "$tmp/s.npy" --quiet
echo "package: Diffusion.Core and Diffusion.Cli $version packed; the tool installed from them trains and samples"
