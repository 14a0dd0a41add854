"""Images per second of the translate stage against the naive loop, and its peak memory.

    python benchmarks/translate.py --out benchmarks/results/translate_cpu.json
    python benchmarks/translate.py --device cuda --images 512 --batch-size 8 --workers 8 \\
        --writers 8 --rss-images 0 --out benchmarks/results/translate_cuda.json

Speed: ``--images`` synthetic street scenes at KITTI size (1242 x 375, ``pipeline synth``) in a
KITTI folder, translated by a paper-size MGUIT (``TranslatorConfig()``: C = 256, N = 20, the
paper's N(0, 0.001) init; random weights cost the same arithmetic as trained ones). In one
process, on the same images, each end to end (checkpoint loading included):

* ``naive``: the authors' test loop, one image at a time in one thread: PIL decode -> tensor
  -> ``MGUIT.translate`` (float32, NCHW, ``torch.no_grad``) -> PIL PNG save (Pillow's default
  level 6) -> label copy;
* ``stage``: :func:`pipeline.translation.translate_dataset` with the options given
  (``--batch-size`` etc.; ``amp`` on: bfloat16 on CPUs with AMX / AVX512-BF16, float16 on CUDA);
* ``stage_float32``: the same with ``amp`` off, i.e. the gain of the I/O overlap alone.

Memory: peak RSS of ``pipeline translate`` in a fresh process for each of ``--rss-images``
(default 100 and 1000), summed over the process tree (main process + decode workers, sampled
every 20 ms; shared pages are counted in each process), and the main process's own peak. The
images are entries of one manifest pointing at ``--images`` distinct files at KITTI size (each
entry its own frame id, so all outputs are written), and the network is small
(``--rss-base-channels``, default 8) so that 1000 images take minutes on a CPU: what is measured
is whether memory grows with the dataset, not the network's footprint. (The main process's RSS
moves up and down by about 100 MiB as the allocator reuses buffers, with no trend; a longer run
samples more of those swings, so compare the peaks with that in mind.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, write_report  # noqa: E402

from mguit import load_translator  # noqa: E402
from mguit.config import TranslatorConfig  # noqa: E402
from mguit.model import MGUIT  # noqa: E402
from mguit.trainer import CHECKPOINT_VERSION  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.config import KITTI_CLASS_MAP, TranslateConfig  # noqa: E402
from pipeline.formats import coco, kitti  # noqa: E402
from pipeline.formats.common import BadInputLog, ImageRecord  # noqa: E402
from pipeline.translation import translate_dataset  # noqa: E402

KITTI_SIZE = (1242, 375)


def save_checkpoint(path: Path, cfg: TranslatorConfig) -> Path:
    torch.manual_seed(0)
    torch.save({"version": CHECKPOINT_VERSION, "model": MGUIT(cfg).state_dict(),
                "config": asdict(cfg)}, path)
    return path


def naive(root: Path, checkpoint: Path, out: Path, device: str) -> float:
    """Seconds for the one-image-at-a-time loop (see the module doc)."""
    start = time.perf_counter()
    model = load_translator(checkpoint, device)
    (out / "image_2").mkdir(parents=True)
    (out / "label_2").mkdir()
    for path in sorted((root / "image_2").iterdir()):
        pixels = np.array(Image.open(path).convert("RGB"))
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().to(device) / 127.5 - 1
        with torch.no_grad():
            y = model.translate(x)[0, 0]
        y = ((y + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(y).save(out / "image_2" / path.name)
        shutil.copyfile(root / "label_2" / f"{path.stem}.txt",
                        out / "label_2" / f"{path.stem}.txt")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def stage(root: Path, checkpoint: Path, out: Path, options: TranslateConfig,
          device: str) -> float:
    start = time.perf_counter()
    translate_dataset(root, out, checkpoint, options, device=device, progress=False)
    return time.perf_counter() - start


def speed(work: Path, args: argparse.Namespace, options: TranslateConfig) -> dict:
    root = work / "speed" / "source" / "training"
    checkpoint = save_checkpoint(work / "paper.pt", TranslatorConfig())
    runs: dict[str, list[float]] = {"naive": [], "stage": [], "stage_float32": []}
    for repeat in range(args.repeats):
        for name in runs:
            out = work / f"{name}-{repeat}"
            if name == "naive":
                seconds = naive(root, checkpoint, out, args.device)
            else:
                opts = options if name == "stage" else TranslateConfig(
                    **{**asdict(options), "amp": False})
                seconds = stage(root, checkpoint, out, opts, args.device)
            runs[name].append(seconds)
            print(f"{name}: {args.images} images in {seconds:.1f} s", flush=True)
            shutil.rmtree(out)
    best = {name: min(times) for name, times in runs.items()}
    rate = {name: args.images / s for name, s in best.items()}
    return {
        "images": args.images, "size": list(KITTI_SIZE), "repeats": args.repeats,
        "network": "paper (TranslatorConfig defaults: C=256, N=20)",
        "seconds": {k: [round(t, 2) for t in v] for k, v in runs.items()},
        "images_per_second": {k: round(v, 4) for k, v in rate.items()},
        "ratio_stage_to_naive": round(rate["stage"] / rate["naive"], 3),
        "ratio_stage_float32_to_naive": round(rate["stage_float32"] / rate["naive"], 3),
    }


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid`` and all its descendants, RSS of ``pid``) in bytes, from /proc."""
    def rss(p: int) -> int:
        try:
            with open(f"/proc/{p}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            return 0

    def children(p: int) -> list[int]:
        found = []
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    found += [int(c) for c in f.read().split()]
        except OSError:
            pass
        return found

    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss(p)
        stack += children(p)
    return total, rss(pid)


def peak_rss(command: list[str]) -> dict:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    peaks = [0, 0]

    def sample() -> None:
        while process.poll() is None:
            total, main = tree_rss(process.pid)
            peaks[0], peaks[1] = max(peaks[0], total), max(peaks[1], main)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    start = time.perf_counter()
    sampler.start()
    _, stderr = process.communicate()
    sampler.join()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return {"peak_rss_tree_mib": round(peaks[0] / 2**20, 1),
            "peak_rss_main_mib": round(peaks[1] / 2**20, 1),
            "seconds": round(time.perf_counter() - start, 1)}


def memory(work: Path, args: argparse.Namespace, options: TranslateConfig) -> dict:
    root = work / "speed" / "source" / "training"
    cfg = TranslatorConfig()
    cfg.model.base_channels = args.rss_base_channels
    cfg.model.content_res_blocks = cfg.model.style_res_blocks = 1
    cfg.model.generator_res_blocks = 1
    cfg.memory.key_dim = cfg.model.feature_channels
    checkpoint = save_checkpoint(work / "small.pt", cfg)
    records = list(kitti.read_kitti(root, class_map=KITTI_CLASS_MAP, log=BadInputLog()))
    results = {}
    for n in args.rss_images:
        entries = [ImageRecord(r.path, r.file_name, r.width, r.height, r.boxes,
                               {**r.extra, "frame_id": f"{i:06d}"})
                   for i, r in ((i, records[i % len(records)]) for i in range(n))]
        manifest = work / f"rss-{n}.json"
        coco.write_manifest(manifest, entries, ["person", "car", "truck", "bicycle"], root)
        out = work / f"rss-{n}"
        command = [sys.executable, "-m", "pipeline", "translate", "--checkpoint",
                   str(checkpoint), "--input", str(manifest), "--output", str(out),
                   "--device", args.device, "--batch-size", str(options.batch_size),
                   "--workers", str(options.workers), "--writers", str(options.writers),
                   "--png-compress-level", str(options.png_compress_level)]
        results[str(n)] = peak_rss(command)
        print(f"memory: {n} images: {results[str(n)]}", flush=True)
        shutil.rmtree(out)
    return {"network": f"base_channels {cfg.model.base_channels}, C={cfg.memory.key_dim}, "
                       "1 residual block per network", "size": list(KITTI_SIZE),
            "distinct_files": len(records), "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=8, help="distinct KITTI-size images")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1,
                        help="the stage's batch size (1 is fastest on CPU at this size)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--rss-images", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--rss-base-channels", type=int, default=8)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # The memory's reads, as the naive loop does: the engine is what is measured.
    options = TranslateConfig(batch_size=args.batch_size, workers=args.workers,
                              writers=args.writers, style="memory")
    report = {"benchmark": "translate", "device": args.device, "machine": describe_machine(),
              "stage_options": asdict(options)}
    with tempfile.TemporaryDirectory(prefix="bench-translate-") as tmp:
        work = Path(tmp)
        synthetic.generate(work / "speed", seed=0, width=KITTI_SIZE[0], height=KITTI_SIZE[1],
                           num_source=args.images, num_target_train=1, num_target_val=1,
                           progress=False)
        if not args.skip_speed:
            report["speed"] = speed(work, args, options)
        if args.rss_images:
            report["memory"] = memory(work, args, options)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
