#!/usr/bin/env bash
# The GPU check, one command, on a machine as it comes: its own Python and PyTorch (CUDA), no
# package registry, this project on PYTHONPATH (nothing installed). Runs the CUDA tests
# (tests/test_cuda.py) and benchmarks/gpu.py and writes to OUTDIR:
#   cuda_tests.log, cuda_tests.xml   pytest's output and JUnit report
#   gpu.json, gpu.log                the benchmark's figures (benchmarks/results/gpu_<device>.json)
#   device_check.json                the summary: versions, device, tests passed/failed/skipped
# A Python package the check needs and the machine lacks is installed, for this check only,
# from benchmarks/wheels/ (filled beforehand by benchmarks/device_wheels.sh on a machine with
# the registry). Exit status: 0 when every CUDA test passed and the benchmark ran.
#
#   bash benchmarks/device_check.sh OUTDIR            # on the GPU machine (under 8 minutes)
#   bash benchmarks/device_check.sh --smoke OUTDIR    # anywhere: CUDA tests skip, toy sizes
set -uo pipefail

smoke=0
out=""
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "device_check.sh: unknown option $arg" >&2; exit 2 ;;
        *) out="$arg" ;;
    esac
done
if [ -z "$out" ]; then
    echo "usage: bash benchmarks/device_check.sh [--smoke] OUTDIR" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
packages="$(mktemp -d)"
trap 'rm -rf "$packages"' EXIT
export PYTHONPATH="$root:$packages${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

# What the tests and the benchmark import beyond PyTorch, numpy and Pillow (a PyTorch install's
# own), with the distribution of each: benchmarks/device_wheels.sh's list. The missing ones are
# installed without dependencies (the list is their closure), into a folder of this check.
missing="$("$python" - <<'EOF'
import importlib.util

needed = {"pytest": "pytest", "iniconfig": "iniconfig", "pluggy": "pluggy",
          "packaging": "packaging", "yaml": "pyyaml", "tqdm": "tqdm", "joblib": "joblib",
          "pycocotools": "pycocotools", "tensorboard": "tensorboard",
          "tensorboard_data_server": "tensorboard-data-server", "absl": "absl-py",
          "grpc": "grpcio", "markdown": "markdown", "google.protobuf": "protobuf",
          "werkzeug": "werkzeug", "markupsafe": "markupsafe", "torchmetrics": "torchmetrics",
          "lightning_utilities": "lightning-utilities", "torch_fidelity": "torch-fidelity",
          "lpips": "lpips", "scipy": "scipy", "typing_extensions": "typing-extensions"}


def present(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


print(" ".join(dist for module, dist in needed.items() if not present(module)))
EOF
)"
if [ -n "$missing" ]; then
    echo "device_check: installing for this check only: $missing (from benchmarks/wheels/)"
    # shellcheck disable=SC2086
    "$python" -m pip install --quiet --no-index --no-deps --find-links "$root/benchmarks/wheels" \
        --target "$packages" $missing > "$out/install.log" 2>&1 \
        || echo "device_check: cannot install $missing (see $out/install.log): fill" \
                "benchmarks/wheels/ with benchmarks/device_wheels.sh for this Python" >&2
fi

started=$(date +%s)
cd "$root" || exit 2
"$python" -m pytest -m cuda tests/test_cuda.py -rs -p no:cacheprovider \
    --junitxml "$out/cuda_tests.xml" 2>&1 | tee "$out/cuda_tests.log"
tests_rc=${PIPESTATUS[0]}

if [ "$smoke" -eq 1 ]; then
    benchmark=("$root/benchmarks/gpu.py" --smoke --device cpu)
else
    benchmark=("$root/benchmarks/gpu.py")
fi
"$python" "${benchmark[@]}" --out "$out/gpu.json" 2>&1 | tee "$out/gpu.log"
benchmark_rc=${PIPESTATUS[0]}

"$python" - "$out" "$tests_rc" "$benchmark_rc" "$(( $(date +%s) - started ))" "$smoke" <<'EOF'
import json
import platform
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

out, tests_rc, benchmark_rc, seconds, smoke = sys.argv[1:]
out, smoke = Path(out), smoke == "1"
counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
report = out / "cuda_tests.xml"
if report.is_file():
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in counts}
passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
# On the GPU machine every CUDA test must run and pass: a skip there means no CUDA was seen.
ok = (int(tests_rc) == 0 and int(benchmark_rc) == 0 and counts["tests"] > 0
      and (smoke or counts["skipped"] == 0))
summary = {
    "check": "device", "smoke": smoke, "ok": ok,
    "python": platform.python_version(), "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "cuda_tests": {**counts, "passed": passed, "exit_status": int(tests_rc)},
    "benchmark": {"json": "gpu.json" if (out / "gpu.json").is_file() else None,
                  "exit_status": int(benchmark_rc)},
    "seconds": int(seconds),
}
(out / "device_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
sys.exit(0 if ok else 1)
EOF
