"""benchmarks/gpu.py: refuses without CUDA; its --smoke run checks the script on any device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_benchmark_refuses_without_cuda():
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "this machine has no CUDA device" in result.stderr


@pytest.mark.slow
def test_gpu_benchmark_smoke_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--out",
                             str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["machine"]["cpu_count"] >= 1
    runs = report["translate"]["runs"]
    assert {(r["amp"], r["batch_size"]) for r in runs} == {(a, b) for a in ("amp", "float32")
                                                          for b in (1, 2)}
    assert report["translate"]["projected_kitti_train_minutes"] > 0
    assert [r["batch_size"] for r in report["translator_train_step"]] == [1, 4]
    assert 0 < report["translator_train_step"][0]["memory_share"] < 1
    assert report["detector_train_step"]["seconds_per_iteration"] > 0
