"""Peak memory and time of the ``prepare`` stage against the number of images.

    python benchmarks/prepare.py --sizes 1000 10000 --out benchmarks/results/prepare.json

Builds KITTI-layout folders of N frames (one small PNG hard-linked N times, three objects per
label file) and runs ``pipeline run --only prepare`` on each in a fresh process, recording the
process's peak RSS and wall time. Streaming means the peak grows with the annotations only
(a few hundred bytes per box), not with the images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, write_report  # noqa: E402

LABELS = ("Car 0.00 0 -1.58 10.00 5.00 40.00 25.00 1.65 1.67 3.64 -0.65 1.71 46.70 -1.59\n"
          "Pedestrian 0.00 0 0.21 45.00 4.00 52.00 28.00 1.80 0.60 0.80 1.00 1.70 20.00 0.25\n"
          "DontCare -1 -1 -10 2.00 2.00 8.00 8.00 -1 -1 -1 -1000 -1000 -1000 -10\n")


def make_kitti(root: Path, n: int) -> None:
    (root / "image_2").mkdir(parents=True)
    (root / "label_2").mkdir()
    template = root / "template.png"
    Image.new("RGB", (64, 32), (90, 90, 90)).save(template)
    for i in range(n):
        os.link(template, root / "image_2" / f"{i:06d}.png")
        (root / "label_2" / f"{i:06d}.txt").write_text(LABELS)
    template.unlink()


CONFIG = """
run: {{name: bench, dir: {runs}, workers: 2}}
data:
  verify_images: {verify}
  source: {{format: kitti, root: {source}, val_fraction: 0.1, class_map: {cmap}}}
  target: {{format: kitti, root: {target}, val_fraction: 0.5, class_map: {cmap}}}
"""
CLASS_MAP = ("{Pedestrian: person, Person_sitting: person, Car: car, Truck: truck, "
             "Cyclist: bicycle, Van: null, Tram: null, Misc: null, DontCare: null}")


def run_prepare(work: Path, n: int, verify: bool) -> dict:
    config = work / f"bench_{n}_{verify}.yaml"
    config.write_text(CONFIG.format(runs=work / f"runs_{n}_{verify}", verify=str(verify).lower(),
                                    source=work / f"kitti_{n}", target=work / "kitti_target",
                                    cmap=CLASS_MAP))
    code = ("import resource, sys; from pipeline.cli import main; "
            f"rc = main(['run', {str(config)!r}, '--only', 'prepare']); "
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    peak_kib = int(done.stdout.split("PEAK")[1].split()[0])
    return {"images": n, "verify_images": verify, "seconds": round(seconds, 2),
            "peak_rss_mib": round(peak_kib / 1024, 1),
            "images_per_second": round(n / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_kitti(work / "kitti_target", 20)
        for n in sorted(args.sizes):
            make_kitti(work / f"kitti_{n}", n)
            results.append(run_prepare(work, n, verify=False))
            print(json.dumps(results[-1]), flush=True)
    report = {"benchmark": "prepare", "machine": describe_machine(), "results": results,
              "note": "peak RSS of the prepare process (image headers only, verify off)"}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
