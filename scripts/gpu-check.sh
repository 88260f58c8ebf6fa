#!/usr/bin/env bash
# The GPU check (issue #14), in two halves, both from the repository root:
#   scripts/gpu-check.sh prepare   on the CPU machine: bundle + PyTorch anchor + Fashion-MNIST into .gpucheck/
#   scripts/gpu-check.sh run       on the GPU host (no Swift, no network): self-test, benches, PyTorch, one summary
#   scripts/gpu-check.sh summary DIR   the summary again, from a run's saved files
# `run` saves its files into $OUT when set (8 files at most come back from there), else .gpucheck/out,
# keeps the whole under 8 minutes, and exits non-zero when the self-test failed or the self-test and
# the fp32/tf32 batch-128 benches (separate processes) chose different cuDNN algorithms.
# Issue 18 on the device: the self-test's checks (NaN through ReLU and argmax, SGD bits against the
# CPU, training as CUDA graphs), the loaded libraries' files and each bench's graph use, all in the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.gpucheck
max_mib=60                 # what the device tool carries is 64 MiB in all, the working tree included
budget_s=450               # every step of `run` together; unpacking and the summary fit in the rest of 8 minutes
bench_steps=30             # timed steps per bench: 3 (the CPU default) is a few milliseconds on a GPU

die() { echo "error: $*" >&2; exit 1; }

prepare() {
  local anchor=${TORCH_ANCHOR:-../shared/bench/torch_gpu_anchor.py}
  local data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
  [ -f "$anchor" ] || die "PyTorch anchor $anchor not found; set TORCH_ANCHOR to torch_gpu_anchor.py's path"
  local files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
  for f in "${files[@]}"; do
    [ -f "$data/$f" ] || die "Fashion-MNIST file $data/$f missing; apt-get install -y dataset-fashion-mnist, or set FASHION_MNIST_DIR"
  done

  rm -rf "$dir"
  mkdir -p "$dir/fashion-mnist"
  # Without oneDNN (a CPU engine): the GPU check must fit the 64 MiB the device tool carries.
  BUNDLE_ONEDNN=0 scripts/bundle.sh "$dir"
  cp "$anchor" "$dir/torch_gpu_anchor.py"
  for f in "${files[@]}"; do cp "$data/$f" "$dir/fashion-mnist/"; done

  local bytes
  bytes=$(du -sb "$dir" | cut -f1)
  echo "$dir: $((bytes / 1024 / 1024)) MiB ($bytes bytes) in $(find "$dir" -type f | wc -l) files"
  (( bytes <= max_mib * 1024 * 1024 )) ||
    die "$dir is larger than $max_mib MiB and will not travel to the GPU host; shrink the bundle (scripts/bundle.sh) first"
  echo "ready: on the GPU host run \`bash scripts/gpu-check.sh run\` from the repository root with $dir beside it"
}

# step NAME LIMIT_S COMMAND...: runs COMMAND under its own timeout, cut to what is left of
# budget_s, so one hung step cannot eat the others' time. A failure is recorded, not fatal.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((budget_s - (SECONDS - started)))
  (( limit <= left )) || limit=$left
  if (( limit < 10 )); then
    printf '%s\tskipped (out of time)\t0\n' "$name" >> "$out/steps.tsv"
    echo "== $name: skipped, the $budget_s s budget is spent" | tee -a "$out/log.txt"
    return
  fi
  echo "== $name (at most $limit s): $*" | tee -a "$out/log.txt"
  local t0=$SECONDS rc=0
  timeout -k 5 "$limit" "$@" > "$scratch/$name.out" 2>&1 || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$out/steps.tsv"
  cat "$scratch/$name.out" >> "$out/log.txt"
  tail -n 20 "$scratch/$name.out"
  echo "   -> exit $rc after $((SECONDS - t0)) s" | tee -a "$out/log.txt"
}

# The four configurations `worker bench` runs, from the anchor's own bench(): its full run has
# no fp32/TF32 figures at batch 512 and spends a minute on runs we do not compare.
anchor_runs='
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, torch_gpu_anchor as anchor
print(json.dumps({"torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
                  "gpu": torch.cuda.get_device_name(0)}), flush=True)
for mode in ("fp32", "tf32"):
    for bs in (128, 512):
        print(json.dumps(anchor.bench(mode=mode, bs=bs)), flush=True)
'

run() {
  local bundle
  bundle=$(ls -t "$dir"/prunesweep-worker-*.tar.xz 2>/dev/null | head -1 || true)
  [ -n "$bundle" ] || die "no bundle in $dir/; run \`scripts/gpu-check.sh prepare\` on the CPU machine and bring $dir along"
  started=$SECONDS
  # What comes back from $OUT is 8 files: log.txt, steps.tsv, selftest.json, 4 × bench-*.json, torch.jsonl.
  out=${OUT:-$dir/out}
  mkdir -p "$out"
  rm -f "$out"/log.txt "$out"/steps.tsv "$out"/selftest.json "$out"/bench-*.json "$out"/torch.jsonl
  scratch=$(mktemp -d /tmp/prunesweep-gpucheck.XXXXXX)
  trap 'rm -rf "$scratch"' EXIT
  tar -C "$scratch" -xf "$bundle"
  local worker="$scratch/prunesweep/worker"
  { echo "bundle: $bundle"; head -4 "$scratch/prunesweep/BUILD"; } | tee -a "$out/log.txt"

  step nvidia-smi 15 sh -c 'nvidia-smi -L && nvidia-smi --query-gpu=driver_version,name,memory.total --format=csv'
  step selftest 150 "$worker" selftest --device cuda --data-dir "$PWD/$dir/fashion-mnist" --json "$out/selftest.json"
  for precision in fp32 tf32; do
    for batch in 128 512; do
      step "bench-$precision-$batch" 45 "$worker" bench --device cuda --precision "$precision" \
        --batch-size "$batch" --steps "$bench_steps" --json "$out/bench-$precision-$batch.json"
    done
  done
  if python3 -c 'import torch' 2>/dev/null; then
    echo "$anchor_runs" > "$scratch/anchor_runs.py"
    step pytorch 90 python3 "$scratch/anchor_runs.py" "$dir"
    grep '^{' "$scratch/pytorch.out" > "$out/torch.jsonl" || true
  else
    printf 'pytorch\tskipped (python3 cannot import torch)\t0\n' >> "$out/steps.tsv"
  fi
  echo "total: $((SECONDS - started)) s" | tee -a "$out/log.txt"
  echo
  command -v python3 > /dev/null || die "no python3 on this host for the summary; the step outputs are in $out"
  local rc=0
  python3 scripts/gpu_summary.py "$out" > "$scratch/summary.txt" || rc=$?
  tee -a "$out/log.txt" < "$scratch/summary.txt"
  return "$rc"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  summary) [ $# -eq 2 ] || die "usage: scripts/gpu-check.sh summary DIR (the files a run saved)"; python3 scripts/gpu_summary.py "$2" ;;
  *) die "usage: scripts/gpu-check.sh prepare|run|summary DIR (got '${1:-}'); see docs/gpu.md" ;;
esac
