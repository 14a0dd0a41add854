"""benchmarks/gpu.py and benchmarks/device_check.sh: they refuse without CUDA; their --smoke
runs check the scripts on any device. benchmarks/scale.py: its memory probe and ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "gpu.py"
CHECK = BENCHMARKS / "device_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_benchmark_refuses_without_cuda():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "this machine has no CUDA device" in result.stderr


@pytest.mark.slow
def test_device_check_smoke_runs_the_cuda_tests_and_the_benchmark(tmp_path):
    result = subprocess.run(["bash", str(CHECK), "--smoke", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1",
                                 "PYTHON": sys.executable})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((tmp_path / "out" / "device_check.json").read_text())
    tests = summary["cuda_tests"]
    assert summary["ok"] is True and summary["smoke"] is True
    assert tests["tests"] >= 9 and tests["failures"] == tests["errors"] == 0
    if not torch.cuda.is_available():
        assert tests["skipped"] == tests["tests"]
        assert "no CUDA device" in (tmp_path / "out" / "cuda_tests.log").read_text()
    report = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert report["smoke"] is True and report["machine"]["cpu_count"] >= 1
    runs = report["translate"]["runs"]
    assert {(r["amp"], r["batch_size"]) for r in runs} == {(a, b) for a in ("amp", "float32")
                                                          for b in (1, 2)}
    assert report["translate"]["projected_kitti_train_minutes"] > 0
    assert [r["batch_size"] for r in report["translator_train_step"]] == [1, 4]
    assert 0 < report["translator_train_step"][0]["memory_share"] < 1
    assert report["detector_train_step"]["seconds_per_iteration"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the failure is for machines without CUDA")
def test_device_check_fails_where_no_cuda_test_can_run(tmp_path):
    result = subprocess.run(["bash", str(CHECK), str(tmp_path / "out")], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 1
    summary = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert summary["ok"] is False and summary["cuda_tests"]["skipped"] >= 9
    assert summary["benchmark"]["exit_status"] == 2


def test_device_check_without_a_folder_says_how_to_call_it():
    result = subprocess.run(["bash", str(CHECK)], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: bash benchmarks/device_check.sh" in result.stderr


def _scale():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import scale
    finally:
        sys.path.remove(str(BENCHMARKS))
    return scale


def test_scale_memory_probe_counts_the_tree_and_a_detached_server(tmp_path):
    """A child that holds 300 MiB, and a process outside the tree named by the marker (as
    FiftyOne's mongod is), are both in the peak."""
    scale = _scale()
    hold = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); " \
           "time.sleep(1.5)"
    marker = str(tmp_path / "db")
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               f"{hold!r}])"])
    server = subprocess.Popen([sys.executable, "-c", hold.replace("1.5", "4"), marker],
                              start_new_session=True)    # outlives the tree: they overlap
    with scale.TreeMemory(parent.pid, marker) as memory:
        parent.wait()
    server.wait()
    assert memory.peak > 2 * 300 * 2**20


def test_scale_ratios_compare_each_size_with_the_one_before():
    stage = lambda s, m: {"seconds": s, "peak_rss_mib": m}     # noqa: E731
    results = {160: {"translate": stage(10, 500)}, 640: {"translate": stage(40, 520)},
               2560: {"translate": stage(170, 520)}}
    assert _scale().ratios(results) == {
        "640/160": {"translate": {"seconds": 4.0, "peak_rss_mib": 1.04}},
        "2560/640": {"translate": {"seconds": 4.25, "peak_rss_mib": 1.0}}}
