#!/usr/bin/env bash
# Issue 4's GPU measurement in one call: SD 1.5 shapes (random weights), float16, 20 prompt pairs,
# 50 steps (51 UNet calls), tau 10; float32 mask agreement and the hook's host-sync check included.
# Usage: bash benchmarking/speed_gpu.sh [OUT_DIR]   (JSON written there, default results/speed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/speed}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarking/speed.py --random_arch sd15 --pairs 20 --num_inference_steps 50 --timesteps 10 \
    --device cuda --dtype float16 --check_fp32 --check_syncs --out "$out/sd15_cuda_float16.json"
