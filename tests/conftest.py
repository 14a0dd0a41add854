"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def make_png():
    """``make_png(path, width, height, noise=False)``: write a real PNG (creating folders).

    ``noise`` fills it with random pixels, so that its compressed data is large enough for a
    truncated copy to lose pixel data and not only the end marker.
    """

    def make(path: Path, width: int = 64, height: int = 48, noise: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if noise:
            pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8)
            Image.fromarray(pixels).save(path)
        else:
            Image.new("RGB", (width, height), (90, 120, 150)).save(path)
        return path

    return make


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Synthetic data in the KITTI (source) and Cityscapes (target) layouts: 10 source images
    (8 train, 2 val), 6 target train, 4 target val, 96 x 48. Tests must not modify it."""
    from pipeline import synthetic

    out = tmp_path_factory.mktemp("synthetic")
    return synthetic.generate(out, seed=3, width=96, height=48, num_source=10,
                              num_target_train=6, num_target_val=4, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """``(config_path, run_dir)`` of a tiny run finished through ``evaluate`` (small random
    networks, see ``tests/tiny_run.py``). Shared by the session: tests must not modify it;
    copy it (``shutil.copytree``) to change it."""
    from tiny_run import make_tiny_run

    return make_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def fiftyone_db(tmp_path_factory) -> Path:
    """The FiftyOne database folder of this test session (``FIFTYONE_DATABASE_DIR``), so tests
    never touch the user's ``~/.fiftyone`` or a database server they configured. FiftyOne starts
    its ``mongod`` there on first use, in a service process that stops it when the test process
    exits."""
    folder = tmp_path_factory.mktemp("fiftyone_db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIFTYONE_DATABASE_DIR", str(folder))
        mp.setenv("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        for name in ("FIFTYONE_DATABASE_URI", "FIFTYONE_PRIVATE_DATABASE_PORT"):
            mp.delenv(name, raising=False)
        yield folder
