# The two commands a user needs: `make demo` and `make test`. Both run the idempotent `make setup`.
SHELL := /bin/bash
DIFFUSION := dotnet src/Diffusion.Cli/bin/Release/net10.0/diffusion.dll

.PHONY: setup build demo test bench bench-peer clean

setup:
	@bash scripts/setup.sh

build:
	dotnet build Diffusion.slnx -c Release -nologo -v q

# Trains the demo UNet on Fashion-MNIST (CPU) and writes runs/demo/: samples.png, loss.png,
# checkpoint.ckpt, metrics.json. Re-running starts the demo afresh.
demo: setup
	$(DIFFUSION) train --config demo --out runs/demo --force

# The test suite; results also go to TestResults/results.trx (read by .ci/run).
test: setup
	dotnet test tests/Diffusion.Tests -c Release --no-build -nologo \
	  --logger "trx;LogFileName=results.trx" --logger "console;verbosity=normal" --results-directory TestResults

# Training and sampling throughput of the reference UNet configs; writes bench/results.json.
bench: setup
	$(DIFFUSION) bench --out bench/results.json

# Paired peer benchmark: the demo UNet in PyTorch (Debian's python3-torch, installed if absent) and in this toolkit,
# alternating rounds; prints samples/s and ratios with their spread, writes bench/peer-results.json (bench/peer/README.md).
# make bench-peer [ROUNDS=5] [STEPS=10] [THREADS=2]
bench-peer: setup
	@THREADS=$(or $(THREADS),2) bash scripts/bench_peer.sh $(or $(ROUNDS),5) $(or $(STEPS),10)

clean:
	rm -rf src/*/bin src/*/obj tests/*/bin tests/*/obj TestResults
