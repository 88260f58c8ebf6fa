#!/usr/bin/env bash
# A worker bundle for hosts with no Swift and none of our packages (a GPU host, a plain
# Ubuntu): the release build with the Swift runtime linked in, plus every shared library that
# a base Debian/Ubuntu system lacks, as one tar.xz.
#   scripts/bundle.sh [OUT_DIR]      (default dist/; prints the bundle's path, size and sha256)
# Unpacked, `prunesweep/worker` and `prunesweep/coordinator` run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
# Its own scratch path: a --static-swift-stdlib build in .build would relink the normal one.
scratch=.build-static
fixture=Tests/ModelTests/Fixtures/resnet18_w8_train.safetensors

# Libraries every glibc system has, in versions at least Debian 12's: never bundled (a
# bundled libc would not match the host's loader). Anything else ldd names is bundled.
base_libs='^(linux-vdso|ld-linux[^ ]*|libc|libm|libmvec|libpthread|libdl|librt|libutil|libresolv|libanl|libstdc\+\+|libgcc_s)\.so'

commit=$(git rev-parse --short HEAD)
dirty=no
[ -z "$(git status --porcelain)" ] || dirty=yes
name="prunesweep-worker-$commit$([ "$dirty" = no ] || echo -dirty)"

started=$SECONDS
for product in worker coordinator; do
  swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product "$product"
done
echo "build: $((SECONDS - started)) s"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/prunesweep"
mkdir -p "$root/bin" "$root/lib" "$root/share/fixtures"
for product in worker coordinator; do
  cp "$scratch/release/$product" "$root/bin/$product"
  strip "$root/bin/$product"
done
cp "$fixture" "$root/share/fixtures/"

# `ldd` lines look like "libzmq.so.5 => /lib/x86_64-linux-gnu/libzmq.so.5 (0x...)"; it
# lists the whole dependency tree, so libzmq's own libsodium etc. come along.
ldd "$root"/bin/* | awk '$2 == "=>" { print $1, $3 }' | sort -u | while read -r soname path; do
  [[ $soname =~ $base_libs ]] && continue
  if [ "$path" = "not" ]; then
    echo "error: $soname, needed by the build, is not installed here; run \`make deps\` and bundle again" >&2
    exit 1
  fi
  cp -L "$path" "$root/lib/$soname"
done

# oneDNN is opened at run time (the second GEMM engine, docs/model.md), so ldd does not name
# it: it comes along with what it needs (OpenMP, the OpenCL loader) when this machine has it,
# unless BUNDLE_ONEDNN=0 (7 MB packed; GPU hosts train on cuBLAS and cuDNN).
dnnl=$(ldconfig -p | awk '$1 == "libdnnl.so.2" && /x86-64/ { print $NF; exit }')
if [ "${BUNDLE_ONEDNN:-1}" != 0 ] && [ -n "$dnnl" ]; then
  cp -L "$dnnl" "$root/lib/libdnnl.so.2"
  ldd "$dnnl" | awk '$2 == "=>" { print $1, $3 }' | while read -r soname path; do
    [[ $soname =~ $base_libs ]] || cp -L "$path" "$root/lib/$soname"
  done
fi

# One wrapper for both programs: its own name (through any symlink) picks the binary.
for product in worker coordinator; do
  cat > "$root/$product" <<'EOF'
#!/bin/sh
# Runs bin/NAME of this bundle with the bundle's libraries found before the host's.
set -e
self=$(readlink -f "$0")
here=$(dirname "$self")
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$here/bin/$(basename "$self")" "$@"
EOF
  chmod 755 "$root/$product"
done

{
  echo "commit: $(git rev-parse HEAD)"
  echo "dirty: $dirty"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "built on: $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(ldd --version | head -1 | awk '{print $NF}')"
  echo "swift: $(swift --version 2>&1 | head -1)"
  echo "sha256:"
  (cd "$root" && find . -type f ! -name BUILD | sort | xargs sha256sum)
} > "$root/BUILD"

mkdir -p "$out"
rm -f "$out"/prunesweep-worker-*.tar.xz
bundle="$out/$name.tar.xz"
# The two binaries are mostly the same code (Swift runtime, Foundation, our libraries): a
# dictionary as large as the whole lets xz store the second as references to the first
# (29 MB instead of 43 MB with -9's 64 MiB). It costs ~11 × the dictionary in memory to
# pack, and the dictionary itself to unpack.
dictionary_mib=$(( $(du -sm "$root" | cut -f1) + 8 ))
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -cf - prunesweep |
  xz -T1 --lzma2=preset=9,dict="${dictionary_mib}MiB" > "$bundle"

# Check what was packed, unpacked as a host would see it: every library outside the base
# resolves inside the bundle, and both programs start with an empty environment.
check="$stage/check"
mkdir "$check"
tar -C "$check" -xf "$bundle"
outside=$(LD_LIBRARY_PATH="$check/prunesweep/lib" ldd "$check"/prunesweep/bin/* "$check"/prunesweep/lib/libdnnl.so.* 2>/dev/null | awk '$2 == "=>" { print $1, $3 }' |
  while read -r soname path; do
    [[ $soname =~ $base_libs || $path == "$check/prunesweep/lib/"* ]] || echo "$soname => $path"
  done | sort -u)
if [ -n "$outside" ]; then
  echo "error: the bundle's programs still load these from the system, not from prunesweep/lib:" >&2
  echo "$outside" >&2
  exit 1
fi
for product in worker coordinator; do
  env -i PATH=/usr/bin:/bin "$check/prunesweep/$product" --help > /dev/null ||
    { echo "error: the unpacked bundle's $product --help failed (above); the bundle $bundle is broken" >&2; exit 1; }
done

echo "bundle: $bundle"
echo "size: $(stat -c %s "$bundle") bytes ($(du -h "$bundle" | cut -f1)); unpacked $(du -sh "$check/prunesweep" | cut -f1)"
echo "sha256: $(sha256sum "$bundle" | cut -d' ' -f1)"
