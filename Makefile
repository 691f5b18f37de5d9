# The two commands a user needs: `make demo` and `make test`. Both run the idempotent `make setup`.
SHELL := /bin/bash
DIFFUSION := dotnet src/Diffusion.Cli/bin/Release/net10.0/diffusion.dll

.PHONY: setup build demo test bench clean

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

clean:
	rm -rf src/*/bin src/*/obj tests/*/bin tests/*/obj TestResults
