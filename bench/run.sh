#!/usr/bin/env bash
# Times sance's training step against the same step written in PyTorch (bench/pytorch_reference.py)
# on the same machine, one after the other, and prints the ratio. Not part of the test suite.
#   bench/run.sh [STEPS]   (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
steps=${1:-2000}
cargo build --release --bin sance-toy >/dev/null 2>&1
sance=$(target/release/sance-toy train --steps "$steps" --log-every 1000000 --device -1 --out /dev/null 2>&1 |
    sed -n 's/^trained in .* (\([0-9.]*\) steps\/s)$/\1/p')
torch=$(python -W ignore bench/pytorch_reference.py "$steps" | awk '{print $2}')
echo "SA-NCE training step, 8gaussians, batch 256, 20 Langevin steps, MLP 2-128-128-1, CPU ($(nproc) cores):"
echo "  sance:             $sance steps/s"
echo "  PyTorch reference: $torch steps/s"
awk -v a="$sance" -v b="$torch" 'BEGIN { printf "  ratio (sance / PyTorch): %.2f\n", a / b }'
