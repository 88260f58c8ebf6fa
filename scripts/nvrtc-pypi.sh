#!/usr/bin/env bash
# Installs NVRTC 13 from PyPI (it runs on a CPU-only machine, no driver needed) and prints the
# directory holding libnvrtc.so.13, for PRUNESWEEP_CUDA_LIBRARY_PATH. The GPU kernels' compile
# test uses it; CI requires that test.
set -euo pipefail
command -v python3 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >&2; }
find_lib() {
  python3 - <<'PY'
import os, sys
try:
    import nvidia
except ImportError:
    sys.exit(1)
for root in nvidia.__path__:
    lib = os.path.join(root, "cu13", "lib")
    if os.path.exists(os.path.join(lib, "libnvrtc.so.13")):
        print(lib); sys.exit(0)
sys.exit(1)
PY
}
if ! find_lib >/dev/null 2>&1; then
  python3 -m pip install -q 'nvidia-cuda-nvrtc==13.*' >&2 \
    || python3 -m pip install -q --break-system-packages 'nvidia-cuda-nvrtc==13.*' >&2
fi
find_lib || { echo "nvrtc-pypi.sh: libnvrtc.so.13 not found after installing nvidia-cuda-nvrtc" >&2; exit 1; }
