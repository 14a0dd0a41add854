"""The ``pipeline synth`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.synthetic.scene import (DEFAULT_HEIGHT, DEFAULT_NUM_DRAWS, DEFAULT_NUM_SOURCE,
                                      DEFAULT_NUM_TARGET_TRAIN, DEFAULT_NUM_TARGET_VAL,
                                      DEFAULT_WIDTH)
from pipeline.synthetic.writers import generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the ``pipeline synth`` subcommand."""
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory (created; replaced only if it holds an older "
                             "synthetic dataset)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                        help=f"image width in pixels (default: {DEFAULT_WIDTH})")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT,
                        help=f"image height in pixels (default: {DEFAULT_HEIGHT})")
    parser.add_argument("--num-source", type=int, default=DEFAULT_NUM_SOURCE,
                        help=f"source (KITTI) images (default: {DEFAULT_NUM_SOURCE})")
    parser.add_argument("--num-target-train", type=int, default=DEFAULT_NUM_TARGET_TRAIN,
                        help="target (Cityscapes) train images "
                             f"(default: {DEFAULT_NUM_TARGET_TRAIN})")
    parser.add_argument("--num-target-val", type=int, default=DEFAULT_NUM_TARGET_VAL,
                        help=f"target (Cityscapes) val images (default: {DEFAULT_NUM_TARGET_VAL})")
    parser.add_argument("--draws", type=int, default=DEFAULT_NUM_DRAWS,
                        help="perfect translations per source image (the source scenes in the "
                             "target style, independent draws of their look) written to "
                             f"OUT/paired/draw_<k>/training (default: {DEFAULT_NUM_DRAWS})")
    parser.add_argument("--parts", action="store_true",
                        help="also write the source scenes with one part of the target style "
                             "at a time, each to OUT/paired/<part>/training: light (all of its "
                             "light), objects (its object looks), and the light taken apart: "
                             "tone, shadowless, lamps, noise (which part of a perfect "
                             "translation closes the detection gap)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="parallel worker processes; -1 = all cores (default: 1); the "
                             "output does not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``pipeline synth``; returns the exit status."""
    try:
        dataset = generate(
            args.out, seed=args.seed, width=args.width, height=args.height,
            num_source=args.num_source, num_target_train=args.num_target_train,
            num_target_val=args.num_target_val, draws=args.draws, parts=args.parts,
            n_jobs=args.jobs, progress=not args.no_progress)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"source (KITTI layout):      {dataset.source_root}  "
          f"({dataset.num_source} images)")
    print(f"target (Cityscapes layout): {dataset.target_root}  "
          f"({dataset.num_target_train} train, {dataset.num_target_val} val images)")
    for k, root in enumerate(dataset.paired_roots):
        print(f"perfect translation {k} (KITTI layout): {root}")
    for part, root in dataset.partial_roots.items():
        print(f"target {part} alone (KITTI layout): {root}")
    return 0
