#!/usr/bin/env bash
# After `make test`: every process a test starts ends with its test, so no process running
# an executable of this clone (its .build, or a bundle in dist/) may be left. Waits up to
# GRACE seconds (default 10) for any still on their way out, then names and kills the rest
# and fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd -P)"
grace="${1:-10}"

leftovers() {
    for proc in /proc/[0-9]*; do
        exe="$(readlink "$proc/exe" 2>/dev/null)" || continue
        case "$exe" in
            "$root"/.build/*|"$root"/dist/*) echo "${proc#/proc/}" ;;
        esac
    done
}

for _ in $(seq $((grace * 5))); do
    [ -z "$(leftovers)" ] && exit 0
    sleep 0.2
done
pids="$(leftovers | tr '\n' ' ')"
[ -z "$pids" ] && exit 0
echo "error: processes of this build tree outlived the tests (a test did not stop what it started); killing them:" >&2
# shellcheck disable=SC2086
ps -o pid,ppid,etime,args -p $pids >&2 || true
# shellcheck disable=SC2086
kill -KILL $pids 2>/dev/null || true
exit 1
