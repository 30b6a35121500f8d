#!/usr/bin/env bash
# Train two demo-model candidates side by side on 2 CPU cores (~95 min): one VAE (12 latent
# channels, 1,000 steps, 2 threads), then the low2 and sd1 UNets, one thread each, reusing that VAE
# (offset noise 0.3, the default). Then measure each candidate's erasure table. demo/README.md
# gives the exact runs behind the shipped model (three continued runs of low2).
# Usage: bash demo/train_candidates.sh [minutes per candidate, default 80] [output folder, default models]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-80}
OUT=${2:-models}
python demo/train_model.py --arch low2 --minutes 0 --vae_steps 1000 --latent_channels 12 --out "$OUT/demo-vae12"
OMP_NUM_THREADS=1 python demo/train_model.py --arch low2 --batch 64 --latent_channels 12 --vae_from "$OUT/demo-vae12" \
    --minutes "$MINUTES" --save_every 20 --out "$OUT/demo-low2" > "$OUT/demo-low2.out" 2>&1 &
OMP_NUM_THREADS=1 python demo/train_model.py --arch sd1 --batch 32 --latent_channels 12 --vae_from "$OUT/demo-vae12" \
    --minutes "$MINUTES" --save_every 20 --out "$OUT/demo-sd1c" > "$OUT/demo-sd1c.out" 2>&1 &
wait
for model in demo-low2 demo-sd1c; do
    python demo/erasure_table.py --model "$OUT/$model" --concepts style=stripes shape=circle
done
