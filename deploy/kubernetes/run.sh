#!/usr/bin/env bash
# Runs the shards, waits for all of them, then the merge.
set -euo pipefail
cd "$(dirname "$0")"
kubectl apply -f sample-job.yaml
kubectl wait --for=condition=complete --timeout=24h job/diffusion-sample
kubectl apply -f merge-job.yaml
kubectl wait --for=condition=complete --timeout=1h job/diffusion-merge
