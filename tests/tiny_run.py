"""A tiny finished run (prepare -> translate -> detectors -> evaluate) for the tests of the stages
that read a whole run (metrics, report, inspect). Every network is small and randomly
initialised; the numbers it produces are meaningless, the files are real."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from pipeline import synthetic
from pipeline.cli import main

NUM_SAMPLES = 2          # the translate stage writes <id>.png and <id>_s1.png
TRAIN_SETS = ("source_only", "translated", "oracle")


def data_section(source_root: Path, target_root: Path, val_fraction: float = 0.2) -> str:
    """The ``data:`` section (YAML) for synthetic data in the KITTI and Cityscapes layouts,
    with the demo's class maps."""
    return textwrap.dedent(f"""\
        data:
          source:
            format: kitti
            root: {source_root}
            val_fraction: {val_fraction}
            class_map: {{Pedestrian: person, Person_sitting: person, Car: car, Truck: truck,
                         Cyclist: bicycle, Van: null, Tram: null, Misc: null, DontCare: null}}
          target:
            format: cityscapes
            root: {target_root}
            class_map: {{person: person, car: car, truck: truck, bicycle: bicycle}}
            on_unknown_label: ignore
        """)


def detector_section(train_sets: Sequence[str]) -> str:
    """The ``detector:`` section (YAML) of small random torchvision detectors (2 iterations)
    for 96 x 48 images."""
    return textwrap.dedent(f"""\
        detector:
          backend: torchvision
          train_sets: [{', '.join(train_sets)}]
          on_missing_class: warn
          num_workers: 0
          model: {{anchor_sizes: [8, 16, 32, 64, 128], fpn_channels: 16, box_head_dim: 32,
                  roi_batch_size_per_image: 32}}
          solver: {{iterations: 2, batch_size: 2, warmup_iterations: 1, checkpoint_every: 2,
                   keep_snapshots: false}}
          input: {{min_size: [48], max_size: 96}}
          torchvision: {{backbone: resnet18_fpn}}
        """)


def write_tiny_run_config(folder: Path, data: synthetic.SyntheticDataset, name: str = "tiny",
                          extra: str = "") -> Path:
    """A config for ``data`` with a small random translator (3 iterations at 32 x 32) and small
    random detectors (2 iterations), run directory ``folder/runs/<name>``."""
    text = textwrap.dedent(f"""\
        run: {{name: {name}, dir: {folder / 'runs'}, workers: 1, device: cpu, seed: 0}}
        """) + data_section(data.source_root, data.target_root) + textwrap.dedent(f"""\
        translator:
          model: {{base_channels: 8, content_res_blocks: 1, style_res_blocks: 1,
                  generator_res_blocks: 1, discriminator_channels: 8, discriminator_layers: 2,
                  discriminator_scales: 1, content_discriminator_channels: 16}}
          memory: {{key_dim: 32, items: {{person: 1, car: 1, truck: 1, bicycle: 1,
                                         background: 2}}}}
          train: {{iterations: 3, resize: 32, crop: 32, num_workers: 0, checkpoint_every: 3,
                  image_every: 3, log_every: 1}}
        translate: {{num_samples: {NUM_SAMPLES}, batch_size: 4, workers: 0, writers: 1}}
        """) + detector_section(TRAIN_SETS) + textwrap.dedent(extra)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def make_tiny_run(folder: Path, name: str = "tiny", extra: str = "") -> tuple[Path, Path]:
    """Generate tiny synthetic data in ``folder`` and run every stage through ``evaluate``.
    Returns ``(config_path, run_dir)``."""
    data = synthetic.generate(folder / "synthetic", seed=7, width=96, height=48, num_source=10,
                              num_target_train=6, num_target_val=4, progress=False)
    config = write_tiny_run_config(folder, data, name, extra)
    assert main(["run", str(config), "--to", "evaluate"]) == 0, "the tiny run failed"
    return config, folder / "runs" / name
