#!/usr/bin/env bash
# The CPU half of a GPU host's check (issue #10): on its many-core server CPU, the worker's CPU
# trainer side by side with PyTorch, per GEMM engine, and the workers × threads layouts.
#   scripts/cpu-check.sh prepare   on the CPU machine: the bundle, oneDNN included, into .cpucheck/
#   scripts/cpu-check.sh run       on the host, from the repository root (no Swift needed)
# Saves log.txt and layouts.tsv into $OUT when set, else .cpucheck/out. About 6 minutes on
# 16 cores; with the device tool: command `bash scripts/cpu-check.sh run`, carry [".cpucheck"],
# timeout 540.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.cpucheck
max_mib=60                 # what the device tool carries is 64 MiB in all, the working tree included
steps=${CPU_CHECK_STEPS:-3}

die() { echo "error: $*" >&2; exit 1; }

prepare() {
  ldconfig -p | grep -q 'libdnnl.so.2 ' || die "oneDNN is not installed here, so the bundle would lack it; run \`make deps\` (libdnnl2)"
  rm -rf "$dir"
  scripts/bundle.sh "$dir"
  local bytes
  bytes=$(du -sb "$dir" | cut -f1)
  (( bytes <= max_mib * 1024 * 1024 )) || die "$dir is $((bytes >> 20)) MiB, more than the $max_mib MiB the device tool carries"
  echo "ready: $dir ($((bytes >> 20)) MiB); on the host run \`bash scripts/cpu-check.sh run\` from the repository root"
}

# The training, evaluation and peak-memory figures of one `worker bench` output, tab-separated.
figures() {
  awk '/^training \(/ { t = $(NF-1) } /^evaluation / { e = $(NF-1) } /^peak resident memory/ { m = $(NF-1) }
       END { printf "%s\t%s\t%s\n", t, e, m }' "$1"
}

run() {
  local bundle
  bundle=$(ls -t "$dir"/prunesweep-worker-*.tar.xz 2>/dev/null | head -1 || true)
  [ -n "$bundle" ] || die "no bundle in $dir/; run \`scripts/cpu-check.sh prepare\` on the CPU machine and bring $dir along"
  local out=${OUT:-$dir/out}
  mkdir -p "$out"
  # Global, not local: the EXIT trap runs after run() has returned.
  scratch=$(mktemp -d /tmp/prunesweep-cpucheck.XXXXXX)
  trap 'rm -rf "$scratch"' EXIT
  tar -C "$scratch" -xf "$bundle"
  local worker="$scratch/prunesweep/worker" cores
  cores=$(nproc)
  # Its own cache: the first measurement on this CPU is part of what is checked.
  export XDG_CACHE_HOME="$scratch/cache"
  {
    echo "bundle: $bundle"
    lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node\(s\))' || true
    grep -o -w -E 'avx512f|avx512_bf16|amx_tile|avx2' /proc/cpuinfo | sort -u | tr '\n' ' '; echo

    echo "== engines at $cores threads"
    "$worker" engines --threads "$cores"
    echo "== one worker × $cores threads, per engine (training, evaluation images/s, peak MiB)"
    for engine in openblas onednn auto; do
      PRUNESWEEP_GEMM_ENGINE=$engine "$worker" bench --device cpu --threads "$cores" --steps "$steps" > "$scratch/bench-$engine.txt" 2>&1
      printf '%s\t%s\n' "$engine" "$(figures "$scratch/bench-$engine.txt")"
    done
    cat "$scratch/bench-auto.txt"
    if python3 -c 'import torch' 2>/dev/null; then
      echo "== PyTorch, $cores threads"
      python3 scripts/torch_bench.py --threads "$cores" --steps "$steps"
    else
      echo "== PyTorch: skipped (python3 cannot import torch)"
    fi
  } 2>&1 | tee "$out/log.txt"

  # Layouts: W workers of T threads each, on disjoint cores, all at once; the host's training
  # rate is the sum of theirs.
  printf 'workers\tthreads\ttraining images/s (sum)\tper worker\n' > "$out/layouts.tsv"
  # On 16 cores: 1 × 16, 2 × 8, 4 × 4 and 8 × 2.
  local workers threads
  for workers in 1 2 4 8; do
    threads=$((cores / workers))
    (( threads >= 1 && workers * threads == cores )) || continue
    "$worker" engines --threads "$threads" >> "$out/log.txt" 2>&1   # measured alone, before the crowd
    local pids=() w rates
    for ((w = 0; w < workers; w++)); do
      taskset -c "$((w * threads))-$((w * threads + threads - 1))" \
        "$worker" bench --device cpu --threads "$threads" --steps "$steps" > "$scratch/layout-$workers-$w.txt" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}"
    rates=$(for ((w = 0; w < workers; w++)); do figures "$scratch/layout-$workers-$w.txt" | cut -f1; done)
    printf '%s\t%s\t%s\t%s\n' "$workers" "$threads" "$(echo "$rates" | awk '{ s += $1 } END { print s }')" \
      "$(echo "$rates" | tr '\n' ' ')" >> "$out/layouts.tsv"
  done
  echo "== layouts (all workers at once, each pinned to its own cores; the sum is the host's rate)" | tee -a "$out/log.txt"
  column -t -s $'\t' "$out/layouts.tsv" | tee -a "$out/log.txt"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  *) die "usage: scripts/cpu-check.sh prepare|run (got '${1:-}'); see docs/gpu.md" ;;
esac
