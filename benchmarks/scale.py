"""Time and peak memory of every stage against the size of the data.

    python benchmarks/scale.py --sizes 160 640 2560 --out benchmarks/results/scale_cpu.json

For each N, ``pipeline synth`` writes N source images and N/4 target train and N/4 target val
images at 256 x 128, and ``configs/demo.yaml`` runs on them with short training (20 translator
and 20 detector iterations), so that the stages that work per image dominate. Three detectors
(source only, translated, oracle) keep their 100 best boxes per image with no score floor,
the load at which ``inspect`` was slowest. Each stage runs in a process of its own
(``pipeline run --only STAGE``): its wall time and the peak RSS of its whole process tree
(FiftyOne's database server included) are recorded, and the ratio of each size to the size
before it. A stage that grows linearly takes ~4x the time at 4x the images; its memory should
hardly grow at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "train_translator", "translate", "train_detector", "evaluate", "metrics",
          "report", "inspect")
SHORT = ["translator.train.iterations=20",
         "detector.solver.iterations=20", "detector.train_sets=[source_only,translated,oracle]",
         "detector.test.score_threshold=0.0", "detector.test.detections_per_image=100",
         "data.source.perfect_translations=[]"]


def synthesize(out: Path, n: int, seed: int) -> None:
    subprocess.run([sys.executable, "-m", "pipeline", "synth", "--out", str(out),
                    "--seed", str(seed), "--num-source", str(n),
                    "--num-target-train", str(n // 4), "--num-target-val", str(n // 4),
                    "--draws", "0", "--jobs", "-1", "--no-progress"],
                   check=True, capture_output=True, text=True)


def overrides(work: Path, data: Path, n: int) -> list[str]:
    return [f"run.dir={work / 'runs'}", f"run.name=scale_{n}",
            f"data.source.root={data / 'source' / 'training'}",
            f"data.target.root={data / 'target'}",
            f"inspect.database_dir={work / f'fiftyone_{n}'}", *SHORT]


class TreeMemory:
    """Peak summed RSS of a process, its descendants and any process whose command line names
    ``marker`` (FiftyOne starts its ``mongod`` detached from the process that asked for it),
    sampled every ``interval`` seconds."""

    def __init__(self, pid: int, marker: str, interval: float = 0.05):
        self.root, self.marker, self.interval = psutil.Process(pid), marker, interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _marked(self) -> dict[int, psutil.Process]:
        return {p.pid: p for p in psutil.process_iter(["cmdline"])
                if self.marker in " ".join(p.info["cmdline"] or ())}

    def _watch(self) -> None:
        marked, samples = {}, 0
        while not self._stop.is_set():
            # Listing every process's command line is the probe's costly part: once a second.
            if samples % max(1, round(1 / self.interval)) == 0:
                marked = self._marked()
            samples += 1
            found = {self.root.pid: self.root, **marked}
            try:
                found.update((p.pid, p) for p in self.root.children(recursive=True))
            except psutil.Error:
                pass
            total = 0
            for p in found.values():
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)


def run_stage(work: Path, config_overrides: list[str], stage: str, n: int) -> dict:
    log = work / f"scale_{n}_{stage}.log"
    command = [sys.executable, "-m", "pipeline", "run", str(ROOT / "configs" / "demo.yaml"),
               *config_overrides, "--only", stage, "--no-progress"]
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        with TreeMemory(process.pid, str(work / f"fiftyone_{n}")) as memory:
            rc = process.wait()
    seconds = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"stage {stage} at N = {n} failed (exit {rc}); see {log}:\n"
                           + log.read_text()[-3000:])
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(memory.peak / 2**20, 1)}


def ratios(results: dict[int, dict[str, dict]]) -> dict:
    sizes = sorted(results)
    return {f"{big}/{small}": {
        stage: {key: round(results[big][stage][key] / results[small][stage][key], 2)
                for key in ("seconds", "peak_rss_mib")}
        for stage in results[big]}
        for small, big in zip(sizes, sizes[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 640, 2560])
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--seed", type=int, default=0, help="synth's seed")
    parser.add_argument("--work", type=Path, help="keep data and runs here (default: a "
                                                  "temporary folder, deleted)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        for n in sorted(args.sizes):
            data = work / f"synthetic_{n}"
            if not (data / "synthetic.json").is_file():
                synthesize(data, n, args.seed)
            for leftover in (work / "runs" / f"scale_{n}", work / f"fiftyone_{n}"):
                shutil.rmtree(leftover, ignore_errors=True)     # every stage runs, from scratch
            results[n] = {}
            for stage in args.stages:
                results[n][stage] = run_stage(work, overrides(work, data, n), stage, n)
                print(f"N = {n:>5}  {stage:<16} {results[n][stage]}", file=sys.stderr,
                      flush=True)
    report = {
        "benchmark": "scale",
        "machine": describe_machine(),
        "threads": os.environ.get("OMP_NUM_THREADS", "all cores"),
        "setting": {"image_size": [256, 128], "config": "configs/demo.yaml", "overrides": SHORT,
                    "target_images": "N/4 train, N/4 val"},
        "stages": {str(n): r for n, r in results.items()},
        "ratios": ratios(results),
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
