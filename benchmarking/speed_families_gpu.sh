#!/usr/bin/env bash
# Time to a pruned model for each modern family's real shape (random weights) on one GPU in bfloat16, in one call
# (about 10 minutes on an H100/H200): SDXL, SD 3.5 medium, PixArt-Sigma, FLUX.1-dev; 4 prompt pairs at the
# family's 1024x1024, tau 10 of each family's default steps; the physical limit (tau plain denoiser calls of
# the same batches) is timed beside it. Usage: bash benchmarking/speed_families_gpu.sh [OUT_DIR] (default results/speed)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-results/speed}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
run() { python3 benchmarking/speed.py --random_arch "$1" --pairs 4 --num_inference_steps "$2" --timesteps 10 \
            --device cuda --dtype bfloat16 --skip_plain --out "$out/$1_cuda_bfloat16.json"; }
run sdxl 50
run sd3.5-medium 28
run pixart-sigma 20
run flux-dev 28
