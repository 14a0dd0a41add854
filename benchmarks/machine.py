"""What a benchmark ran on, for its JSON output."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def describe_machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": None,
    }
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0), "version": torch.version.cuda}
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_report(report: dict, out: Path | None) -> None:
    """Print the report as JSON and, when ``out`` is given, write it there too."""
    text = json.dumps(report, indent=2)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    print(text)
