#!/usr/bin/env bash
# Which UNet design draws the demo world's styles best? Trains several --arch candidates side by side on
# one GPU with the same plain recipe (the shipped VAE, no FFN penalty, the same seed and batch), then
# measures what each draws: demo/draws.py per-value accuracy for style, shape and colour (16 scenes per
# value, 20 DDIM steps, guidance 5), and writes OUT/summary.json and a Markdown table on stdout.
# Batch 256 by default: on a GPU a small UNet's step costs about the same at batch 64 or 256, so a few
# minutes see as many images as the CPU recipe's 8,402 steps at batch 64 (a probe of a design, not a
# reproduction of the CPU recipe).
# Usage: bash demo/compare_archs_gpu.sh [out folder, default models/archs] [training minutes, default 4.5] [arch ...]
# Env: BATCH (default 256), STEPS (cap, default 0: only the minutes stop training), DEVICE (default cuda),
# SMOKE=1 (a tiny CPU check of this script: 2 steps, 512 images, 1 scene per value).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models/archs}
MINUTES=${2:-4.5}
shift 2 2>/dev/null || shift $#
ARCHS=("$@")
[ ${#ARCHS[@]} -gt 0 ] || ARCHS=(low2 att16 wide16 att16w)
BATCH=${BATCH:-256}
STEPS=${STEPS:-0}
DEVICE=${DEVICE:-cuda}
PER_VALUE=16
EXTRA=""
if [ "${SMOKE:-0}" = 1 ]; then DEVICE=cpu; STEPS=2; PER_VALUE=1; EXTRA="--images 512"; fi
mkdir -p "$OUT"
echo "training ${ARCHS[*]} at batch $BATCH for $MINUTES min on $DEVICE: $(date +%T)"
for arch in "${ARCHS[@]}"; do
    OMP_NUM_THREADS=2 python3 demo/train_model.py --arch "$arch" --latent_channels 12 --vae_from demo/model --batch "$BATCH" \
        --steps "$STEPS" --minutes "$MINUTES" --device "$DEVICE" --latent_cache "$OUT/.latents" $EXTRA --out "$OUT/$arch" > "$OUT/$arch.out" 2>&1 &
    sleep 2  # every run may encode the dataset and write the latent cache: the writes are atomic
done
wait
echo "training done: $(date +%T)"
for arch in "${ARCHS[@]}"; do
    [ -f "$OUT/$arch/training.json" ] || { echo "$arch: no model (see $OUT/$arch.out)"; continue; }
    (for attribute in style shape colour; do
        OMP_NUM_THREADS=2 python3 demo/draws.py --model_id "$OUT/$arch" --attribute $attribute --per_value $PER_VALUE \
            --device "$DEVICE" --out "$OUT/$arch-draws-$attribute.json" > "$OUT/$arch-draws-$attribute.out" 2>&1
    done) &
done
wait
echo "draws done: $(date +%T)"
python3 - "$OUT" "${ARCHS[@]}" <<'EOF'
import json, sys
from pathlib import Path
out, archs = Path(sys.argv[1]), sys.argv[2:]
rows = {}
print("| arch | UNet parameters | steps | batch | final loss | style | shape | colour |")
print("|---|---|---|---|---|---|---|---|")
for arch in archs:
    report = out / arch / "training.json"
    if not report.is_file():
        continue
    training = json.loads(report.read_text())
    row = {k: training.get(k) for k in ("unet_parameters", "steps", "batch", "final_loss", "train_seconds", "ffn_layers")}
    for attribute in ("style", "shape", "colour"):
        draws = out / f"{arch}-draws-{attribute}.json"
        if draws.is_file():
            drawn = json.loads(draws.read_text())
            table = next(iter(drawn["tables"].values()))
            means = drawn.get("mean_accuracy")  # absent in files of older draws.py runs
            row[attribute] = next(iter(means.values())) if means else sum(v["accuracy"] for v in table.values()) / len(table)
            if attribute == "style":
                row["style_per_value"] = {k: v["accuracy"] for k, v in table.items()}
    rows[arch] = row
    cells = [f"{row[a]:.0%}" if a in row else "-" for a in ("style", "shape", "colour")]
    print(f"| {arch} | {row['unet_parameters'] / 1e6:.2f} M | {row['steps']} | {row['batch']} | {row['final_loss']:.4f} | " + " | ".join(cells) + " |")
(out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
EOF
