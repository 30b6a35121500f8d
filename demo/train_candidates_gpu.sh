#!/usr/bin/env bash
# Train the demo-model design candidates side by side on one GPU, then measure each one's erasure table.
# Every candidate reuses the shipped VAE (demo/model) and is capped at STEPS steps at batch 64: the
# budget that one 2-thread CPU process also trains within 2 hours (demo/README.md gives the CPU speeds),
# so a GPU run here picks a design that the CPU recipe can reproduce. The "-long" candidates run
# uncapped at batch 256 for the same minutes: how far does more training take a design?
# Usage: bash demo/train_candidates_gpu.sh [out folder, default models/gpu] [training minutes, default 4.8]
# Env: STEPS (default 4500), TABLE_SECONDS (limit of each table, default 170), SMOKE=1 (a tiny CPU check of
# this script: 2 steps, 512 images, short tables).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/gpu}
MINUTES=${2:-4.8}
STEPS=${STEPS:-4500}
TABLE_SECONDS=${TABLE_SECONDS:-170}
mkdir -p "$OUT"
if [ "${SMOKE:-0}" = 1 ]; then
    DEVICE=cpu; STEPS=2; EXTRA="--images 512"; LONG_STEPS=2
    TABLE="--pairs 2 --eval_prompts 4 --skill_ratios 0.1 --taus 10"; QUALITY=8
else
    DEVICE=cuda; EXTRA=""; LONG_STEPS=0
    TABLE="--skill_ratios 0.1 0.2 0.05 0.02 0.01 --taus 10 5 all"; QUALITY=256
fi
COMMON="--latent_channels 12 --vae_from demo/model --device $DEVICE --minutes $MINUTES $EXTRA"
# name | arguments
CANDIDATES=(
    "low2-s0.3|--arch low2 --ffn_selectivity 0.3 --steps $STEPS"
    "low3-s0.3|--arch low3 --ffn_selectivity 0.3 --steps $STEPS"
    "low4-s0.3|--arch low4 --ffn_selectivity 0.3 --steps $STEPS"
    "wide96-s0.3|--arch wide96 --ffn_selectivity 0.3 --steps $STEPS"
    "low4-plain|--arch low4 --steps $STEPS"
    "low2-s0.3-long|--arch low2 --ffn_selectivity 0.3 --batch 256 --steps $LONG_STEPS"
    "wide96-s0.3-long|--arch wide96 --ffn_selectivity 0.3 --batch 256 --steps $LONG_STEPS"
)
for spec in "${CANDIDATES[@]}"; do
    name=${spec%%|*}
    OMP_NUM_THREADS=2 python3 demo/train_model.py ${spec#*|} $COMMON --out "$OUT/$name" > "$OUT/$name.out" 2>&1 &
done
wait
echo "training done: $(date +%T)"
for spec in "${CANDIDATES[@]}"; do
    name=${spec%%|*}
    [ -f "$OUT/$name/training.json" ] || { echo "$name: no model"; continue; }
    grep -h '"steps"' "$OUT/$name/training.json" | head -1 | sed "s/^/$name /"
    OMP_NUM_THREADS=1 timeout "$TABLE_SECONDS" python3 demo/erasure_table.py --device $DEVICE --model "$OUT/$name" --concepts style=stripes \
        --quality_prompts $QUALITY $TABLE --out "$OUT/$name-stripes.json" > "$OUT/$name-stripes.out" 2>&1 &
    OMP_NUM_THREADS=1 timeout "$TABLE_SECONDS" python3 demo/erasure_table.py --device $DEVICE --model "$OUT/$name" --concepts shape=circle \
        --quality_prompts 0 $TABLE --out "$OUT/$name-circle.json" > "$OUT/$name-circle.out" 2>&1 &
done
wait
echo "tables done: $(date +%T)"
