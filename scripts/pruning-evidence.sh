#!/usr/bin/env bash
# Accuracy vs density on real data (Fashion-MNIST, offline) for the pruning methods, with a
# short recipe: ResNet18 width 16, 10,000 training images, 2 epochs, batch 128, SGD 0.1 /
# 0.9 / 5e-4 with cosine decay, crop + flip, seed 0, tested on the 10,000 test images.
#   scripts/pruning-evidence.sh [OUT_DIR]      (default runs/evidence; about 25 minutes on 2 cores)
# Prints a markdown table at the end; every run directory keeps its metrics.json.
set -euo pipefail
out=${1:-runs/evidence}
worker=${WORKER:-.build/release/worker}
mkdir -p "$out"
recipe=(--dataset fashion-mnist --width 16 --epochs 2 --batch-size 128 --lr 0.1 --schedule cosine
        --validation-size 0 --train-limit 10000 --seed 0)
prune=(--dataset fashion-mnist --width 16 --seed 0)

train() { # NAME [extra train args]
  local name=$1; shift
  [ -f "$out/$name/metrics.json" ] || "$worker" train "${recipe[@]}" --out "$out/$name" "$@" | grep -E '^(epoch|mask|done)'
}

"$worker" init --input-channels 1 --width 16 --seed 0 --out "$out/theta0.safetensors"
train dense --initial "$out/theta0.safetensors"

# Lottery Ticket: prune 20% layer-wise from the round's final weights, rewind to θ0, retrain.
previous="$out/dense"; mask_args=()
for round in 1 2 3; do
  "$worker" prune --method lottery-ticket --weights "$previous/weights.safetensors" "${mask_args[@]}" \
    "${prune[@]}" --out "$out/lth-mask-$round.safetensors" | tail -1
  train "lth-round-$round" --initial "$out/theta0.safetensors" --mask "$out/lth-mask-$round.safetensors"
  previous="$out/lth-round-$round"; mask_args=(--mask "$out/lth-mask-$round.safetensors")
done

for density in 0.2 0.05 0.01; do
  for iterations in 1 10 100; do
    "$worker" prune --method synflow --iterations "$iterations" --density "$density" "${prune[@]}" \
      --out "$out/synflow-$iterations-$density.safetensors" | tail -1
    train "synflow-$iterations-$density" --initial "$out/theta0.safetensors" --mask "$out/synflow-$iterations-$density.safetensors"
  done
  for method in snip random; do
    "$worker" prune --method "$method" --density "$density" "${prune[@]}" --out "$out/$method-$density.safetensors" | tail -1
    train "$method-$density" --initial "$out/theta0.safetensors" --mask "$out/$method-$density.safetensors"
  done
done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for name in sorted(os.listdir(out)):
    path = os.path.join(out, name, "metrics.json")
    if os.path.isfile(path):
        m = json.load(open(path))
        density = m["remaining"] / m["prunable"]
        rows.append((name, density, m["finalTestAccuracy"], sum(h["seconds"] for h in m["history"])))
print("| run | density | sparsity | test accuracy | train+eval seconds |")
print("|---|---|---|---|---|")
for name, density, accuracy, seconds in sorted(rows, key=lambda r: (-r[1], r[0])):
    print(f"| {name} | {density:.4f} | {1 - density:.4f} | {100 * accuracy:.2f}% | {seconds:.0f} |")
PY
