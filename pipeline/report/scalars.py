"""Training curves read back from TensorBoard event files.

The translator's trainer and the detector backends log their losses with torch's
``SummaryWriter``; this reads them with TensorBoard's own ``EventAccumulator``, so the report
plots exactly what TensorBoard would show, without TensorBoard running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator


@dataclass(frozen=True)
class Series:
    """One scalar tag: values by training step, steps increasing."""

    steps: list[int]
    values: list[float]


def read_scalars(logdir: Path) -> dict[str, Series]:
    """Every scalar tag logged in ``logdir`` (all its event files); ``{}`` when there is none.

    A training resumed after an interruption writes a new event file that may log again steps
    logged before the kill; the value written last wins, as the resumed run's is the one that
    continued.
    """
    if not logdir.is_dir():
        return {}
    # size_guidance 0 keeps every event: the default samples scalars down to 10,000 points.
    accumulator = EventAccumulator(str(logdir), size_guidance={SCALARS: 0})
    # Its directory watcher logs every event file it opens at INFO: noise in the run's log.
    tb_logger = logging.getLogger("tensorboard")
    level = tb_logger.level
    tb_logger.setLevel(logging.WARNING)
    try:
        accumulator.Reload()
    finally:
        tb_logger.setLevel(level)
    series = {}
    for tag in accumulator.Tags()[SCALARS]:
        by_step: dict[int, float] = {}
        for event in sorted(accumulator.Scalars(tag), key=lambda e: e.wall_time):
            by_step[event.step] = event.value
        steps = sorted(by_step)
        series[tag] = Series(steps, [by_step[s] for s in steps])
    return series


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """TensorBoard's smoothing: an exponential moving average, debiased so that the first
    points are not pulled towards 0."""
    out, last, norm = [], 0.0, 0.0
    for value in values:
        last = last * weight + (1 - weight) * value
        norm = norm * weight + (1 - weight)
        out.append(last / norm)
    return out
