#!/usr/bin/env bash
# Train the shipped demo model (demo/model) from nothing, in one command: the VAE, then the five
# step-exact UNet/text runs of its recipe (low2, 12 latent channels; plain, then FFN selectivity 0.1,
# then 0.3; 8,402 steps in all), one after the other on all the CPU threads (or the GPU with DEVICE=cuda).
# Prints the wall time of each stage and of the whole. Training is seeded, but floating-point sums
# depend on thread count and device, so the weights match demo/model only approximately.
# Usage: bash demo/train_shipped.sh [output folder, default models/shipped]   (the model: OUT/model)
# The judge (demo/judge.py, on ground truth and this VAE's reconstructions) trains beside the UNet runs on
# 1 thread once the VAE exists, as it did for the shipped model: OUT/judge.safetensors (JUDGE=0 skips it).
# SMOKE=1 divides every step count by 200 and trains the judge on 512 images for 1 epoch: a quick check that
# the chain runs (not a usable model).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/shipped}
DEVICE=${DEVICE:-cpu}
SMOKE=${SMOKE:-0}
JUDGE=${JUDGE:-1}
mkdir -p "$OUT"
steps() { if [ "$SMOKE" = 1 ]; then echo $(( ($1 + 199) / 200 )); else echo "$1"; fi; }
IMAGES=40000; [ "$SMOKE" = 1 ] && IMAGES=512
T="--arch low2 --latent_channels 12 --minutes 600 --device $DEVICE --images $IMAGES --save_every 20 --latent_cache $OUT/.latents"
start=$(date +%s)
stage() {  # stage NAME ARGS...: one run of demo/train_model.py, timed
    local name=$1; shift
    local t0; t0=$(date +%s)
    python demo/train_model.py $T "$@" --out "$OUT/$name" > "$OUT/$name.out" 2>&1
    echo "$name: $(( $(date +%s) - t0 )) s (total $(( $(date +%s) - start )) s)"
}
stage vae --minutes 0 --vae_steps "$(steps 1000)"
judge_pid=""
if [ "$JUDGE" = 1 ]; then
    J="--augment --epochs 8"; [ "$SMOKE" = 1 ] && J="--augment --epochs 1 --train_images 512"
    ( t0=$(date +%s); OMP_NUM_THREADS=1 python demo/judge.py $J --vae_from "$OUT/vae" --out "$OUT/judge.safetensors" > "$OUT/judge.out" 2>&1
      echo "judge (beside the runs, 1 thread): $(( $(date +%s) - t0 )) s" ) &
    judge_pid=$!
fi
stage plain-a --vae_from "$OUT/vae" --offset_noise 0 --steps "$(steps 868)"
stage plain-b --vae_from "$OUT/vae" --init_from "$OUT/plain-a" --offset_noise 0 --steps "$(steps 1080)"
stage plain --vae_from "$OUT/vae" --init_from "$OUT/plain-b" --steps "$(steps 3137)"
stage select0.1 --vae_from "$OUT/plain" --init_from "$OUT/plain" --ffn_selectivity 0.1 --steps "$(steps 2113)"
stage model --vae_from "$OUT/select0.1" --init_from "$OUT/select0.1" --ffn_selectivity 0.3 --steps "$(steps 1204)"
if [ -n "$judge_pid" ]; then wait "$judge_pid"; fi  # a failed judge fails the whole command
echo "all: $(( $(date +%s) - start )) s; the model: $OUT/model${judge_pid:+, the judge: $OUT/judge.safetensors}"
