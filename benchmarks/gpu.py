"""One GPU benchmark, one JSON: translating, training the translator, training the detector.

    python benchmarks/gpu.py --out benchmarks/results/gpu.json

On a CUDA machine, in a few minutes (the defaults stay under 8 on one modern GPU):

* ``translate``: the ``translate`` stage end to end (decoding, the paper-size MGUIT, PNG
  writing) on synthetic street scenes at KITTI size (1242 x 375), float16 autocast and float32,
  batch sizes 1, 4 and 8; images per second and the projected time for KITTI's 7,481 training
  images at the best setting;
* ``translator_train_step``: one MGUIT training iteration at 360 x 360, batch 1 and 4, with
  AMP, and the memory module's share of it (``benchmarks/train_step.py``'s measurement);
* ``detector_train_step``: one Faster R-CNN R50-FPN training iteration (torchvision backend) at
  the Cityscapes recipe's size (1024 x 2048 inputs, batch 2 per GPU), float32.

On a machine without CUDA it refuses (exit 2): ``benchmarks/translate.py`` and
``benchmarks/train_step.py`` measure CPUs. ``--smoke`` runs every part at toy sizes on any
device, so that the script itself is tested where no GPU is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine, write_report  # noqa: E402
from train_step import mean_seconds, time_memory_work, time_training_step  # noqa: E402
from translate import save_checkpoint  # noqa: E402

from detection.config import DetectorConfig  # noqa: E402
from detection.torchvision_backend import architecture, build_model  # noqa: E402
from mguit.config import ModelConfig, TranslatorConfig  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.config import TranslateConfig  # noqa: E402
from pipeline.translation import translate_dataset  # noqa: E402

KITTI_TRAIN_IMAGES = 7481


def translate_throughput(work: Path, device: str, images: int, size: tuple[int, int],
                         batch_sizes: list[int], cfg: TranslatorConfig) -> dict:
    data = synthetic.generate(work / "data", seed=0, width=size[0], height=size[1],
                              num_source=images, num_target_train=1, num_target_val=1,
                              progress=False)
    checkpoint = save_checkpoint(work / "paper.pt", cfg)
    runs = []
    for amp in (True, False):
        for batch in batch_sizes:
            options = TranslateConfig(batch_size=batch, amp=amp, workers=4, writers=4,
                                      style="memory")
            out = work / f"out-{amp}-{batch}"
            start = time.perf_counter()
            translate_dataset(data.source_root, out, checkpoint, options, device=device,
                              progress=False)
            seconds = time.perf_counter() - start
            shutil.rmtree(out)
            # translate.amp is float16 on CUDA (bfloat16 on CPUs that have it, in --smoke).
            precision = ("float16" if device.startswith("cuda") else "amp") if amp else "float32"
            runs.append({"amp": precision, "batch_size": batch,
                         "seconds": round(seconds, 2),
                         "images_per_second": round(images / seconds, 3)})
            print(runs[-1], flush=True)
    best = max(runs, key=lambda r: r["images_per_second"])
    return {"images": images, "size": list(size), "png_writing": True, "runs": runs,
            "best": best, "projected_kitti_train_minutes":
                round(KITTI_TRAIN_IMAGES / best["images_per_second"] / 60, 1)}


def translator_step(device: torch.device, size: int, batch_sizes: list[int], steps: int,
                    cfg: TranslatorConfig) -> list[dict]:
    results = []
    for batch in batch_sizes:
        step = time_training_step(cfg, batch, size, steps, 1, device, device.type == "cuda")
        memory = time_memory_work(cfg, batch, size, steps, device)
        results.append({"batch_size": batch, "amp": device.type == "cuda",
                        "seconds_per_iteration": round(step, 4),
                        "memory_share": round(memory / step, 4)})
        print(results[-1], flush=True)
    return results


def detector_step(device: torch.device, size: tuple[int, int], batch: int, steps: int,
                  backbone: str) -> dict:
    """The model resizes its inputs as the config's ``input`` says: shorter side ``size[0]``."""
    cfg = DetectorConfig()
    cfg.torchvision.backbone = backbone
    cfg.input.min_size, cfg.input.max_size = [size[0]], size[1]
    torch.manual_seed(0)
    model = build_model(architecture(cfg, 4)).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    height, width = size
    images = [torch.rand(3, height, width, device=device) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 200.0, 300.0]], device=device),
                "labels": torch.tensor([1], device=device)} for _ in range(batch)]

    def step() -> None:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds = mean_seconds(step, steps, 1, device)
    return {"backbone": backbone, "input": [height, width], "batch_size": batch,
            "seconds_per_iteration": round(seconds, 4),
            "images_per_second": round(batch / seconds, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes on any device: checks the script, measures nothing")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("benchmarks/gpu.py measures CUDA: this machine has no CUDA device "
              "(torch.cuda.is_available() is False). For CPU figures run benchmarks/translate.py "
              "and benchmarks/train_step.py.", file=sys.stderr)
        return 2
    if args.smoke:
        sizes = {"images": 2, "translate": (96, 48), "batches": [1, 2], "train": 32,
                 "detector": (64, 128), "steps": 1, "backbone": "resnet18_fpn",
                 "model": ModelConfig(base_channels=4, num_downsample=1, discriminator_layers=2,
                                      discriminator_scales=1),
                 "memory_dim": 8}
    else:
        sizes = {"images": 64, "translate": (1242, 375), "batches": [1, 4, 8], "train": 360,
                 "detector": (1024, 2048), "steps": 10, "backbone": "resnet50_fpn",
                 "model": ModelConfig(), "memory_dim": None}
    translator = TranslatorConfig(model=sizes["model"])
    if sizes["memory_dim"] is not None:
        translator.memory.key_dim = sizes["memory_dim"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-benchmark-") as tmp:
        report = {
            "benchmark": "gpu", "device": str(device), "smoke": args.smoke,
            "machine": describe_machine(),
            "translate": translate_throughput(Path(tmp), args.device, sizes["images"],
                                              sizes["translate"], sizes["batches"], translator),
            "translator_train_step": translator_step(device, sizes["train"], [1, 4][
                :len(sizes["batches"])], sizes["steps"], translator),
            "detector_train_step": detector_step(device, sizes["detector"], 2, sizes["steps"],
                                                 sizes["backbone"]),
        }
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
