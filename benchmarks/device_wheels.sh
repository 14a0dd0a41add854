#!/usr/bin/env bash
# Fill benchmarks/wheels/ (git-ignored) with the wheels benchmarks/device_check.sh may need on a
# GPU machine without a package registry: the small pure or binary packages the CUDA tests and
# benchmarks/gpu.py import, for that machine's Python (default 3.12), never PyTorch itself or
# its CUDA libraries (the machine's own are what is checked). Each is installed there only if
# missing. Run it where the registry is, then carry benchmarks/wheels with the working tree.
#
#   bash benchmarks/device_wheels.sh [PYTHON_VERSION]      # e.g. 3.12
set -euo pipefail
version="${1:-3.12}"
root="$(cd "$(dirname "$0")/.." && pwd)"
wheels="$root/benchmarks/wheels"
python="${PYTHON:-$root/.venv/bin/python}"
mkdir -p "$wheels"
# --no-deps with the closure spelled out: resolving would fetch torch (gigabytes) for the
# packages that declare it. numpy and pillow come with every PyTorch install.
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$wheels" \
    --python-version "$version" --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any \
    pytest iniconfig pluggy packaging pyyaml tqdm joblib pycocotools \
    tensorboard tensorboard-data-server absl-py grpcio markdown protobuf werkzeug markupsafe \
    torchmetrics lightning-utilities torch-fidelity lpips scipy typing-extensions
size=$(du -sm "$wheels" | cut -f1)
echo "benchmarks/wheels: $(ls "$wheels" | wc -l) wheels, ${size} MiB (the device carries 64 MiB)"
if [ "$size" -gt 60 ]; then
    echo "device_wheels.sh: over 60 MiB: drop what the GPU machine has" >&2
    exit 1
fi
